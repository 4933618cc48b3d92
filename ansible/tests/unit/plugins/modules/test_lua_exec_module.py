# lua_exec: check mode compiles only, and its result has no elapsed_ms (nothing ran).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.luaexec.appliance.plugins.modules import lua_exec

EXEC = '/api/v1/exec/interactive.lua'


def test_check_mode_compiles_and_reports_no_time(appliance, run_module):
    appliance.answers[('POST', EXEC)] = (200, b'')
    failed, result = run_module(lua_exec.main, {'chunk': 'x = 1'}, check=True)
    assert not failed, result
    assert result['changed'] is False and result['msg'] == 'compiled on the appliance; not run (check mode)'
    assert 'elapsed_ms' not in result and 'results' not in result
    appliance.answers[('POST', EXEC)] = (200, {'ok': True, 'results': [{'changed': False}], 'output': '',
                                               'elapsed_ms': 0.5})
    failed, result = run_module(lua_exec.main, {'chunk': 'return {changed = false}'})
    assert result['elapsed_ms'] == 0.5 and result['changed'] is False


def test_a_url_path_is_kept_before_the_api_path(appliance, run_module):
    appliance.answers[('POST', EXEC)] = (200, {'ok': True, 'results': [], 'output': '', 'elapsed_ms': 0.1})
    failed, result = run_module(lua_exec.main, {'chunk': 'return', 'url': 'https://box/luaexec/'})
    assert not failed, result
    assert appliance.methods() == [('POST', '/luaexec' + EXEC)]
