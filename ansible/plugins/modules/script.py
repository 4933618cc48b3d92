#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: script
short_description: Install, enable, disable or remove a stored script on a luaexec appliance
description:
  - Declares a stored script (SPEC V8) by name. Installing a new version runs it at once and
    keeps it only when the run succeeds, exactly as C(luaexec script install) does.
  - Idempotent. With O(state=present) or O(state=enabled), nothing is sent when the stored
    script's SHA-256 is the SHA-256 of the given source; V(changed) is then false.
  - Diff mode shows the stored source before and the given source after; with O(state=absent),
    the stored source as removed. When either side is not UTF-8, both are shown with each byte
    that is not UTF-8 as C(\xNN) and each backslash as C(\\), so that different bytes never
    look the same.
  - O(name) is checked with the box's rule before any request.
  - Check mode reports what would change and changes nothing; a new source is compiled on the
    appliance under the script's own name (C(POST .../check)), so a syntax error fails the dry
    run as it would fail the real one (an older luaexecd, which lacks it, gets a warning and no compile).
    Whether its run succeeds is known only by running it.
version_added: "0.1.0"
author: luaexec maintainers
extends_documentation_fragment:
  - luaexec.appliance.connection
options:
  name:
    description:
      - The script's name on the appliance.
      - 1 to 128 bytes of letters, digits, C(.), C(_) and C(-), ending in C(.lua), not starting
        with C(.) or holding C(..) (the box's rule).
    type: str
    required: true
  state:
    description:
      - V(present) installs the source (a new version when it differs) and leaves the enabled
        flag as it is (a new version of a disabled script is stored disabled, not run); V(enabled)
        also enables it; V(disabled) keeps it but withdraws what it
        registered (a new source is stored disabled and not run); V(absent) removes it with every
        kept version.
    type: str
    choices: [present, enabled, disabled, absent]
    default: present
  source:
    description:
      - The script's Lua source. With V(present), one of O(source) and O(src).
      - With V(enabled) or V(disabled) and neither, the stored script is enabled or disabled as
        it is (it must exist).
      - B(Ansible templates this text with Jinja before the module sees it), and Lua's table
        syntax is Jinja's. C({{0}}) silently becomes C(0), C({{1,2},{3,4}}) and C({#t, 0}) fail
        the task. Tag inline Lua with YAML's C(!unsafe), as the EXAMPLES do, or keep the script
        in a file and use O(src).
    type: str
  src:
    description:
      - A file on the controller holding the source, stored byte for byte (never templated; a file
        that is not UTF-8 keeps its bytes).
      - A relative path is looked for as M(ansible.builtin.copy) looks for its src, in the
        role's or the playbook's C(files/) directory, then beside the playbook.
    type: path
  token:
    description: A token with the C(admin) scope.
    type: str
    required: true
notes:
  - Part of the C(luaexec.appliance.luaexec) action group.
  - Supports check mode and diff mode.
'''

EXAMPLES = r'''
- name: Roll the doorbell script out
  luaexec.appliance.script:
    name: doorbell.lua
    src: files/doorbell.lua
    state: enabled

# Inline Lua is marked !unsafe: Ansible would otherwise read {{ }}, {# and {% in it as Jinja.
- name: A small script inline
  luaexec.appliance.script:
    name: grid.lua
    source: !unsafe |
      local grid = {{1, 2}, {3, 4}}
      http.listen('grid', function() return #grid end)

- name: Remove an old script
  luaexec.appliance.script:
    name: legacy.lua
    state: absent
'''

RETURN = r'''
script:
  description:
    - The stored script's record after the task (name, version, sha256, bytes, enabled,
      installed_by, installed_at, last_run...), never its source; null when absent.
  returned: always
  type: dict
  sample: {"name": "doorbell.lua", "version": 2, "sha256": "9f86d0...", "enabled": true}
run:
  description: What the install's run returned (SPEC E5), when a new version was installed.
  returned: when a version was installed
  type: dict
'''

import hashlib
import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import (
    LuaexecError, client_from_module, luaexec_argument_spec, path_segment, script_name_problem)

# What the result leaves out of the box's record (0.1.2 returned it whole): the source, base64
# of the whole script, which every task would otherwise carry at -v.
LEFT_OUT = ('source',)
ESCAPED = '; not UTF-8: such bytes as \\xNN, a backslash as \\\\'


def summary(record):
    """The box's record for the result, without its source; None for no script."""
    if not isinstance(record, dict):
        return None
    return dict((field, value) for field, value in record.items() if field not in LEFT_OUT)


def diff_texts(before, after):
    """The two sides of a source diff, as text: as they are when both are UTF-8; else both with
    each byte that is not UTF-8 as \\xNN and each backslash doubled, so that two different
    sources never show the same (decoding with U+FFFD would make every such byte alike)."""
    try:
        return before.decode('utf-8'), after.decode('utf-8'), False
    except UnicodeDecodeError:
        def escaped(data):
            return data.replace(b'\\', b'\\\\').decode('utf-8', 'backslashreplace')
        return escaped(before), escaped(after), True


def main():
    spec = luaexec_argument_spec()
    spec.update(
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'enabled', 'disabled', 'absent']),
        source=dict(type='str'),
        src=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=spec, mutually_exclusive=[('source', 'src')],
                           required_if=[('state', 'present', ('source', 'src'), True)],
                           supports_check_mode=True)
    name, state = module.params['name'], module.params['state']
    problem = script_name_problem(name)
    if problem is not None:
        module.fail_json(msg=problem)
    source = module.params['source'].encode('utf-8') if module.params['source'] is not None else None
    if module.params['src']:
        try:
            with open(module.params['src'], 'rb') as handle:
                source = handle.read()
        except (IOError, OSError) as error:
            module.fail_json(msg='cannot read %s: %s' % (module.params['src'], error))
    client = client_from_module(module)
    path = '/api/v1/admin/scripts/' + path_segment(name)
    try:
        status, record = client.json('GET', path, ok=(200, 404))
        current = record if status == 200 else None

        def stored_source():
            # The stored source, for diff mode only (one more request).
            stored_status, _, stored = client.request('GET', path, headers={'Accept': 'text/plain'})
            return stored if stored_status == 200 else b''

        result = dict(changed=False, script=summary(current))
        if state == 'absent':
            if current is not None:
                result['changed'] = True
                if module._diff:
                    before, _, escaped = diff_texts(stored_source(), b'')
                    result['diff'] = dict(before=before, after='',
                                          before_header='%s (stored%s)' % (name, ESCAPED if escaped else ''),
                                          after_header='%s (removed)' % name)
                if not module.check_mode:
                    client.json('DELETE', path)
                    result['script'] = None
            module.exit_json(**result)
        if state in ('enabled', 'disabled') and source is None and current is None:
            module.fail_json(msg='%s: no script named %s to %s; give source or src to install it'
                             % (client.url, name, state[:-1]))
        # present leaves the flag as it is: a new version of a disabled script stays disabled.
        keep_off = state == 'disabled' or (state == 'present' and current is not None
                                           and not current.get('enabled', True))
        if source is not None and (current is None or current['sha256'] != hashlib.sha256(source).hexdigest()):
            result['changed'] = True
            if module._diff:
                before, after, escaped = diff_texts(stored_source() if current is not None else b'', source)
                note = ESCAPED if escaped else ''
                result['diff'] = dict(before=before, after=after, before_header='%s (stored%s)' % (name, note),
                                      after_header='%s (given%s)' % (name, note))
            if module.check_mode:
                # Compiled on the appliance under the script's own name (SPEC E12): a dry run
                # fails where the real one would with a syntax error. Nothing runs or is stored.
                # A luaexecd from before POST .../check answers 405 (never an install): the
                # dry run then reports without the compile, and says so.
                status, headers, answer = client.request(
                    'POST', path + '/check', body=source, headers={'Content-Type': 'text/plain'})
                if status in (404, 405):
                    module.warn('%s cannot compile a script without installing it (an older luaexecd): '
                                'check mode did not compile %s' % (client.url, name))
                elif status != 200:
                    raise client.refusal('POST', path + '/check', status, headers, answer)
            else:
                # Kept off (state=disabled, or present over a disabled script): stored disabled
                # and never run (?enabled=false). A luaexecd from before it ignores the
                # parameter and runs the version; the disable below then follows, and a
                # warning says it ran.
                put = path + ('?enabled=false' if keep_off else '')
                status, headers, answer = client.request('PUT', put, body=source,
                                                         headers={'Content-Type': 'text/plain'})
                if status not in (200, 201):
                    raise client.refusal('PUT', put, status, headers, answer)
                installed = json.loads(answer.decode('utf-8'))
                result['script'], result['run'] = summary(installed.get('script')), installed.get('run')
                if keep_off and (result['script'] or {}).get('enabled'):
                    module.warn('%s is an older luaexecd: it ran %s once before it was disabled'
                                % (client.url, name))
        enabled = (result['script'] or {}).get('enabled', True)
        want = False if keep_off else {'enabled': True}.get(state)
        if want is not None and enabled != want and result['script'] is not None:
            result['changed'] = True
            if not module.check_mode:
                _, changed = client.json('POST', path + ('/enable' if want else '/disable'))
                result['script'] = summary(changed.get('script'))
        module.exit_json(**result)
    except LuaexecError as error:
        details = error.answer if isinstance(error.answer, dict) else {}
        module.fail_json(msg=error.message, error=details.get('error'))


if __name__ == '__main__':
    main()
