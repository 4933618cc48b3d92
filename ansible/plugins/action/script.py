# -*- coding: utf-8 -*-
# The controller side of luaexec.appliance.script and lua_exec (lua_exec.py imports this): a
# relative `src` is found as ansible.builtin.copy finds one (a role's or the playbook's files/,
# then the playbook's directory), not against the directory the module happens to run in.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Resolves `src` on the controller, then runs the module with its absolute path."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        src = args.get('src')
        if src:
            try:
                args['src'] = self._find_needle('files', src)
            except AnsibleError as error:
                raise AnsibleActionFail('cannot find src %s (looked in files/ and beside the playbook): %s'
                                        % (src, to_text(error)))
        result.update(self._execute_module(module_args=args, task_vars=task_vars))
        return result
