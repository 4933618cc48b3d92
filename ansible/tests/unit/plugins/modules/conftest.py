# Runs a module's main() in-process against a scripted appliance: Client.request is replaced by
# a table of answers, and every request the module makes is recorded, so that a test can say
# what was sent (or that nothing was).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils import basic
from ansible_collections.luaexec.appliance.plugins.module_utils import luaexec

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19
    from unittest import mock

    def patch_module_args(args):
        return mock.patch.object(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode())

PIN = 'sha256//' + 'A' * 43 + '='
CONNECTION = {'url': 'https://box:9743', 'token': 'lxk_acting', 'pin': PIN}


class Appliance(object):
    """Answers by (method, path, accept) or (method, path): (status, body), body a dict (JSON)
    or bytes; 404 for anything else."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.sent = []

    def request(self, client, method, path, body=None, headers=None):
        self.sent.append((method, client.prefix + path, body))
        accept = (headers or {}).get('Accept', 'application/json')
        missing = (404, {'ok': False, 'error': {'message': 'not found'}})
        status, answer = self.answers.get((method, path, accept), self.answers.get((method, path), missing))
        if not isinstance(answer, bytes):
            answer = json.dumps(answer).encode()
        return status, {}, answer

    def methods(self):
        return [(method, path) for method, path, _ in self.sent]


@pytest.fixture
def appliance(monkeypatch):
    box = Appliance()

    def request(client, method, path, body=None, headers=None):
        return box.request(client, method, path, body, headers)

    monkeypatch.setattr(luaexec.Client, 'request', request)
    return box


@pytest.fixture
def run_module(capsys):
    """run_module(main, args, check=False, diff=False, no_log=False) -> (failed, result)."""

    def run(main, args, check=False, diff=False, no_log=False):
        arguments = dict(CONNECTION)
        arguments.update(args)
        arguments.update(_ansible_check_mode=check, _ansible_diff=diff, _ansible_no_log=no_log)
        with patch_module_args(arguments):
            with pytest.raises(SystemExit) as exited:
                main()
        result = json.loads(capsys.readouterr().out)
        return exited.value.code != 0, result

    return run
