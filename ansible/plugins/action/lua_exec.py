# -*- coding: utf-8 -*-
# The controller side of luaexec.appliance.lua_exec: `src` found as script's is (script.py).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.luaexec.appliance.plugins.action.script import ActionModule  # noqa: F401 pylint: disable=unused-import
