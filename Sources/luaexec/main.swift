import LuaexecCommands

Luaexec.main()
