# The config module: the path and the value are checked before any request; diffs are JSON.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.luaexec.appliance.plugins.modules import config

PATH = '/api/v1/admin/config/'


@pytest.mark.parametrize('path', [
    '../scripts/victim.lua', '..%2Ftokens', '../tokens', 'a/../b', 'a/./b', 'a//b', '/a', 'a/', '.a', 'a.',
    'a b', '', 'x' * 257, 'caf\u00e9',
])
def test_a_path_the_box_would_not_take_fails_and_sends_nothing(appliance, run_module, path):
    for state in ('absent', 'present'):
        failed, result = run_module(config.main, {'path': path, 'state': state, 'value': 1})
        assert failed
        assert result['msg'] == ("bad path '%s': use 1 to 256 letters, digits, '.', '_', '-' and '/', not starting "
                                 "or ending with '.', with no empty, '.' or '..' part between slashes" % path)
    assert appliance.sent == []


@pytest.mark.parametrize('path', ['a', 'doorbell.ring_seconds', 'a/b.c/d-e_f', 'a..b', 'x' * 256])
def test_a_good_path_is_asked_for(appliance, run_module, path):
    appliance.answers[('GET', PATH + path.replace('/', '%2F'))] = (200, {'value': 1})
    failed, result = run_module(config.main, {'path': path, 'value': 1})
    assert not failed, result
    assert result['changed'] is False
    assert appliance.methods() == [('GET', PATH + path.replace('/', '%2F'))]


@pytest.mark.parametrize('value', [18446744073709551616, 1 << 63, -(1 << 63) - 1])
def test_an_integer_beyond_64_bits_fails_before_any_request(appliance, run_module, value):
    failed, result = run_module(config.main, {'path': 'a.b', 'value': value})
    assert failed
    assert result['msg'] == ('value %d is outside the signed 64-bit range the config store keeps integers in '
                             '(-9223372036854775808 to 9223372036854775807): it could never match what the box '
                             'stores' % value)
    assert appliance.sent == []


@pytest.mark.parametrize('value', [(1 << 63) - 1, -(1 << 63), 0])
def test_the_64_bit_bounds_are_kept(appliance, run_module, value):
    appliance.answers[('GET', PATH + 'a.b')] = (200, {'value': value})
    failed, result = run_module(config.main, {'path': 'a.b', 'value': value})
    assert not failed, result
    assert result['changed'] is False


def test_a_diff_shows_values_as_json(appliance, run_module):
    appliance.answers[('GET', PATH + 'greeting')] = (200, {'value': True})
    appliance.answers[('PUT', PATH + 'greeting')] = (200, {'value': 'h\u00e9llo'})
    failed, result = run_module(config.main, {'path': 'greeting', 'value': 'h\u00e9llo'}, diff=True)
    assert not failed, result
    assert result['diff'] == {'before': 'greeting: true\n', 'after': 'greeting: "h\u00e9llo"\n'}
    appliance.answers[('GET', PATH + 'n')] = (200, {'value': 3})
    failed, result = run_module(config.main, {'path': 'n', 'value': 3.0}, check=True, diff=True)
    assert result['changed'] is True
    assert result['diff'] == {'before': 'n: 3\n', 'after': 'n: 3.0\n'}
    failed, result = run_module(config.main, {'path': 'n', 'state': 'absent'}, check=True, diff=True)
    assert result['diff'] == {'before': 'n: 3\n', 'after': ''}
    assert ('PUT', PATH + 'n') not in appliance.methods() and ('DELETE', PATH + 'n') not in appliance.methods()
