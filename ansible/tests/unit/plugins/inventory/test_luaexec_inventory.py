from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.errors import AnsibleParserError
from ansible_collections.luaexec.appliance.plugins.inventory.luaexec import (
    default_remotes_file, host_name, hosts_from, read_remotes)


def test_the_remotes_file_is_where_luaexec_keeps_it():
    assert default_remotes_file({'HOME': '/home/ops'}) == '/home/ops/.config/luaexec/remotes.json'
    assert default_remotes_file({'HOME': '/home/ops', 'XDG_CONFIG_HOME': '/etc/x'}) == '/etc/x/luaexec/remotes.json'
    # A relative XDG_CONFIG_HOME is ignored, as the XDG spec and luaexec ignore it.
    assert default_remotes_file({'HOME': '/home/ops', 'XDG_CONFIG_HOME': 'rel'}) == '/home/ops/.config/luaexec/remotes.json'


PIN = 'sha256//' + 'A' * 43 + '='


def remote(name, url='https://box', **fields):
    made = {'name': name, 'url': url, 'fingerprint': PIN, 'token': 'lxk_x'}
    made.update(fields)
    return made


def test_host_names_are_usable_in_patterns_and_keep_the_remote_name():
    assert host_name('box1', 'luaexec') == 'box1'
    # As 0.1.2 named them: --limit takes HOST:PORT as it is, and host_vars/HOST:PORT.yml applies.
    assert host_name('box:8443', 'luaexec') == 'box:8443'
    assert host_name('[fd00::7]:8443', 'luaexec') == '[fd00::7]:8443'
    for reserved in ('all', 'ungrouped', 'localhost', 'luaexec'):
        assert host_name(reserved, 'luaexec') == 'luaexec_' + reserved
    assert host_name('phones', 'phones') == 'luaexec_phones'
    hosts = hosts_from([remote('box:8443', 'https://box:8443'), remote('all', 'https://other')], 'r.json', 'luaexec')
    assert hosts == [
        ('box:8443', {'ansible_connection': 'local', 'luaexec_remote': 'box:8443', 'luaexec_url': 'https://box:8443',
                      'luaexec_pin': PIN, 'luaexec_token': 'lxk_x'}),
        ('luaexec_all', {'ansible_connection': 'local', 'luaexec_remote': 'all', 'luaexec_url': 'https://other',
                         'luaexec_pin': PIN, 'luaexec_token': 'lxk_x'}),
    ]
    assert 'luaexec_token' not in hosts_from([remote('a', token=None)], 'r.json', 'luaexec', tokens=False)[0][1]


def test_a_remote_without_a_fingerprint_is_named_with_the_file():
    broken = remote('box1')
    del broken['fingerprint']
    with pytest.raises(AnsibleParserError) as raised:
        hosts_from([broken], '/home/ops/.config/luaexec/remotes.json', 'luaexec')
    assert str(raised.value) == ("the remote 'box1' in /home/ops/.config/luaexec/remotes.json has no fingerprint: "
                                 "log in to it again with luaexec login URL --name NAME")


def test_two_remotes_for_one_host_name_fail_naming_both():
    with pytest.raises(AnsibleParserError) as raised:
        hosts_from([remote('luaexec_all', 'https://a:8443'), remote('all', 'https://b')], 'r.json', 'luaexec')
    assert "the remotes 'luaexec_all' and 'all' in r.json would both be the host luaexec_all" in str(raised.value)


def test_a_missing_remotes_file_says_to_log_in(tmp_path):
    missing = str(tmp_path / 'remotes.json')
    with pytest.raises(AnsibleParserError) as raised:
        read_remotes(missing)
    assert str(raised.value) == ('no luaexec remotes file %s: log in to each box first with `luaexec login '
                                 'https://BOX` (it writes the file), or set remotes_file to where it is' % missing)
    broken = tmp_path / 'broken.json'
    broken.write_text('{"remotes": 3}')
    with pytest.raises(AnsibleParserError) as raised:
        read_remotes(str(broken))
    assert 'is not a luaexec remotes file' in str(raised.value)
    good = tmp_path / 'good.json'
    good.write_text(json.dumps({'default': 'a', 'remotes': [remote('a')]}))
    assert read_remotes(str(good)) == [remote('a')]
