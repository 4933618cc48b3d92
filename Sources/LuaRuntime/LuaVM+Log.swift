import Logging

extension LuaVM {
    /// `log.write(tag, text)` (CLuaSupport's log.c): one line in the log, at the level the tag
    /// names (`debug` to `critical`), else at info: `lua tag=toast text="hello world"`. The tag
    /// and text are values of the line, never its message, so a script's text cannot pass for
    /// luaexecd's own; the log handler escapes what they hold (SystemSupport's `LogLine`).
    func scriptLogged(tag: UnsafeRawBufferPointer, text: UnsafeRawBufferPointer) {
        let tag = String(decoding: tag, as: UTF8.self)
        let level = Logger.Level(rawValue: tag) ?? .info
        guard logger.logLevel <= level else { return }
        let text = String(decoding: text, as: UTF8.self)
        logger.log(level: level, "lua", metadata: ["tag": "\(tag)", "text": "\(text)"])
    }
}
