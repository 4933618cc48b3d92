# The script module: its name is checked before any request, diffs show different bytes
# differently, state=absent shows the stored source as removed, and the result carries the
# record's summary, never the source.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

import pytest

from ansible_collections.luaexec.appliance.plugins.modules import script

PATH = '/api/v1/admin/scripts/'


def record(source, **fields):
    made = {'name': 'a.lua', 'version': 1, 'sha256': hashlib.sha256(source).hexdigest(), 'bytes': len(source),
            'enabled': True, 'source': 'c2VjcmV0', 'installed_by': 'ops', 'last_run': None, 'registered': []}
    made.update(fields)
    return made


@pytest.mark.parametrize('name', ['../config/a.b', '..%2Fconfig', 'a', '.a.lua', 'a..lua', 'a/b.lua', 'x' * 126 + '.lua'])
def test_a_name_the_box_would_not_take_fails_and_sends_nothing(appliance, run_module, name):
    failed, result = run_module(script.main, {'name': name, 'state': 'absent'})
    assert failed
    assert result['msg'] == ("bad script name '%s': use 1 to 128 bytes of letters, digits, '.', '_' and '-', "
                             "ending in '.lua', not starting with '.' or holding '..'" % name)
    assert appliance.sent == []


def test_sources_that_are_not_utf8_show_different_bytes_differently():
    before, after, escaped = script.diff_texts(b"s = '\xe9'\n", b"s = '\xe8'\n")
    assert escaped and before != after
    assert (before, after) == ("s = '\\xe9'\n", "s = '\\xe8'\n")
    # A backslash is doubled, so that the text \xe9 and the byte E9 differ too.
    before, after, _ = script.diff_texts(b"s = '\\xe9'\n", b"s = '\xe9'\n")
    assert (before, after) == ("s = '\\\\xe9'\n", "s = '\\xe9'\n")
    assert script.diff_texts('h\u00e9'.encode(), b'x') == ('h\u00e9', 'x', False)


def test_a_one_byte_change_of_a_latin1_source_shows_in_the_diff(appliance, run_module, tmp_path):
    stored, given = b"return '\xe9'\n", b"return '\xe8'\n"
    src = tmp_path / 'latin1.lua'
    src.write_bytes(given)
    appliance.answers[('GET', PATH + 'a.lua')] = (200, record(stored))
    appliance.answers[('GET', PATH + 'a.lua', 'text/plain')] = (200, stored)
    appliance.answers[('POST', PATH + 'a.lua/check')] = (200, b'')
    failed, result = run_module(script.main, {'name': 'a.lua', 'src': str(src)}, check=True, diff=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['diff']['before'] == "return '\\xe9'\n"
    assert result['diff']['after'] == "return '\\xe8'\n"
    assert result['diff']['before_header'] == 'a.lua (stored; not UTF-8: such bytes as \\xNN, a backslash as \\\\)'
    assert [m for m, _, _ in appliance.sent] == ['GET', 'GET', 'POST']


def test_absent_shows_the_stored_source_as_removed(appliance, run_module):
    stored = b"http.listen('x', function() return 1 end)\n"
    appliance.answers[('GET', PATH + 'a.lua')] = (200, record(stored))
    appliance.answers[('GET', PATH + 'a.lua', 'text/plain')] = (200, stored)
    failed, result = run_module(script.main, {'name': 'a.lua', 'state': 'absent'}, check=True, diff=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['diff'] == {'before': stored.decode(), 'after': '', 'before_header': 'a.lua (stored)',
                              'after_header': 'a.lua (removed)'}
    assert [m for m, _, _ in appliance.sent] == ['GET', 'GET']
    # Without diff mode, no source is fetched.
    del appliance.sent[:]
    failed, result = run_module(script.main, {'name': 'a.lua', 'state': 'absent'}, check=True)
    assert 'diff' not in result
    assert [m for m, _, _ in appliance.sent] == ['GET']


def test_the_result_holds_the_records_summary_not_the_source(appliance, run_module):
    source = b'return 1\n'
    appliance.answers[('GET', PATH + 'a.lua')] = (200, record(source))
    failed, result = run_module(script.main, {'name': 'a.lua', 'source': 'return 1\n'})
    assert not failed, result
    assert result['changed'] is False
    expected = record(source)
    del expected['source']
    assert result['script'] == expected
