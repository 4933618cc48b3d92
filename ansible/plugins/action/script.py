# -*- coding: utf-8 -*-
# The controller side of luaexec.appliance.script and lua_exec (lua_exec.py imports this): a
# relative `src` is found as ansible.builtin.copy finds one (a role's or the playbook's files/,
# then the playbook's directory), not against the directory the module happens to run in.
# Otherwise as ansible.builtin's generic action (normal.py): check mode and async as the
# module has them.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash


class ActionModule(ActionBase):
    """Resolves `src` on the controller, then runs the module with its absolute path."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.get('src')
        if src:
            try:
                args['src'] = self._find_needle('files', src)
            except AnsibleError:
                raise AnsibleActionFail(
                    'cannot find src %s on the controller: a relative path is looked for in the role\'s and the '
                    'playbook\'s files/ directories, then beside the playbook; give one of those, or an absolute path'
                    % src)
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(module_args=args, task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
