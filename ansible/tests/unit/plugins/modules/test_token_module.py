# The token module: an expired token fails with what to do, scopes are a set, and a token is
# never made by a task that would print its secret (no no_log).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.luaexec.appliance.plugins.modules import token

TOKENS = '/api/v1/admin/tokens'


def record(**fields):
    made = {'name': 'monitoring', 'scopes': ['metrics'], 'created': '2026-01-01T00:00:00Z', 'expires': None,
            'last_used': None}
    made.update(fields)
    return made


def test_an_expired_token_fails_with_when_and_how_to_renew(appliance, run_module):
    appliance.answers[('GET', TOKENS)] = (200, {'tokens': [record(expires='2020-01-02T03:04:05Z')]})
    for check in (False, True):
        failed, result = run_module(token.main, {'name': 'monitoring', 'scopes': ['metrics']}, check=check)
        assert failed
        assert result['msg'] == ('https://box:9743: token monitoring expired at 2020-01-02T03:04:05Z, and the box '
                                 'refuses it; it cannot be renewed in place: revoke it (state: absent), then make '
                                 'it again (state: present)')
    assert appliance.methods() == [('GET', TOKENS), ('GET', TOKENS)]


def test_expiry_is_read_as_the_box_writes_it():
    assert token.expired_at({'expires': '2026-12-01T12:00:00Z'}, now=1796126400) == '2026-12-01T12:00:00Z'
    assert token.expired_at({'expires': '2026-12-01T12:00:00Z'}, now=1796126399) is None
    assert token.expired_at({'expires': None}) is None
    assert token.expired_at({'expires': '3000-01-01T00:00:00Z'}) is None


def test_repeated_scopes_are_one_scope(appliance, run_module):
    appliance.answers[('GET', TOKENS)] = (200, {'tokens': [record(scopes=['exec'])]})
    failed, result = run_module(token.main, {'name': 'monitoring', 'scopes': ['exec', 'exec']})
    assert not failed, result
    assert result['changed'] is False
    appliance.answers[('GET', TOKENS)] = (200, {'tokens': []})
    appliance.answers[('POST', TOKENS)] = (201, dict(record(scopes=['exec']), token='lxk_new'))
    failed, result = run_module(token.main, {'name': 'monitoring', 'scopes': ['exec', 'exec']}, no_log=True)
    assert not failed, result
    assert result['token'] == 'lxk_new'
    method, path, body = appliance.sent[-1]
    assert (method, path) == ('POST', TOKENS)
    assert b'"scopes": ["exec"]' in body


def test_a_token_is_not_made_without_no_log(appliance, run_module):
    appliance.answers[('GET', TOKENS)] = (200, {'tokens': []})
    for check in (False, True):
        failed, result = run_module(token.main, {'name': 'monitoring', 'scopes': ['metrics']}, check=check)
        assert failed
        assert 'Add no_log: true to the task and register the result' in result['msg']
        assert 'token' not in result
    assert appliance.methods() == [('GET', TOKENS), ('GET', TOKENS)]


def test_without_no_log_an_existing_token_and_a_revocation_still_work(appliance, run_module):
    appliance.answers[('GET', TOKENS)] = (200, {'tokens': [record()]})
    appliance.answers[('DELETE', TOKENS + '/monitoring')] = (204, b'')
    failed, result = run_module(token.main, {'name': 'monitoring', 'scopes': ['metrics']})
    assert not failed and result['changed'] is False
    failed, result = run_module(token.main, {'name': 'monitoring', 'state': 'absent'})
    assert not failed and result['changed'] is True
    assert appliance.methods()[-1] == ('DELETE', TOKENS + '/monitoring')
