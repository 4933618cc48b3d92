#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: token
short_description: Make or revoke an API token on a luaexec appliance
description:
  - Declares a token by name (SPEC M4). A new token's secret is in the result once, in
    RV(token); the appliance keeps only its hash. Store it (a vault) from the registered result.
  - B(A task that would make a token must have C(no_log=true)); without it the task fails
    before anything changes on the box, since Ansible would print the secret (C(-v)) and keep it
    in clear in the result. A task that finds the token already there, or revokes it, needs no
    C(no_log).
  - An existing token with the same scopes is left alone (V(changed) false, no secret). One
    whose scopes differ is not changed behind your back; the task fails and says so; revoke it
    with O(state=absent) first.
  - An existing token that has expired fails the task with the time it expired (the box refuses
    it, and it cannot be renewed in place). Revoke it (O(state=absent)), then make it again.
version_added: "0.1.0"
author: luaexec maintainers
extends_documentation_fragment:
  - luaexec.appliance.connection
options:
  name:
    description: The token's name.
    type: str
    required: true
  state:
    description: V(present) makes it when missing; V(absent) revokes it.
    type: str
    choices: [present, absent]
    default: present
  scopes:
    description:
      - Its scopes (C(exec), C(admin), C(metrics), C(endpoint:NAME), C(action:NAME)); required to
        make one. Order and repeats do not matter.
    type: list
    elements: str
  expires:
    description:
      - How long it lives from when it is made, as C(luaexec token create --expires) takes it
        (a number and C(s), C(m), C(h) or C(d), C(30d), C(12h)); never expires when omitted.
    type: str
  token:
    description: A token with the C(admin) scope (the one acting, not the one made).
    type: str
    required: true
notes:
  - Part of the C(luaexec.appliance.luaexec) action group. Supports check mode.
'''

EXAMPLES = r'''
# no_log is required to make a token: the secret is in the registered result only.
- name: A read-only token for the monitoring host
  luaexec.appliance.token:
    name: prometheus
    scopes: [metrics]
    expires: 365d
  register: made
  no_log: true

- name: Keep the secret (a vault, in real life)
  ansible.builtin.copy:
    content: "{{ made.token }}"
    dest: secrets/prometheus.token
    mode: "0600"
  when: made.changed
  no_log: true

- name: Renew an expired token, step 1 of 2 (then make it again, as above)
  luaexec.appliance.token:
    name: prometheus
    state: absent
'''

RETURN = r'''
token:
  description: The new token's secret, once, when it was made now (the task has C(no_log), so only the registered result holds it).
  returned: when a token was made
  type: str
record:
  description: The token's record (name, scopes, created, expires, last_used), never a secret.
  returned: when the token exists after the task
  type: dict
'''

import calendar
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import (
    LuaexecError, client_from_module, luaexec_argument_spec, path_segment)


def expired_at(record, now=None):
    """The record's `expires` (2026-12-01T12:00:00Z, as the box writes it) when that time has
    passed; None when the token has not expired or never expires."""
    expires = record.get('expires')
    if not expires:
        return None
    try:
        moment = calendar.timegm(time.strptime(expires, '%Y-%m-%dT%H:%M:%SZ'))
    except (TypeError, ValueError):
        return None
    return expires if moment <= (time.time() if now is None else now) else None


def no_log_refusal(name):
    return ('token %s would be made now, and its secret is in the result: this task does not have no_log: true, '
            'so Ansible would print the secret (-v) and keep it in clear. Add no_log: true to the task and '
            'register the result (register: made, then made.token); nothing was changed' % name)


def main():
    spec = luaexec_argument_spec()
    spec.update(
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        scopes=dict(type='list', elements='str'),
        expires=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=spec, required_if=[('state', 'present', ('scopes',))],
                           supports_check_mode=True)
    name, state = module.params['name'], module.params['state']
    client = client_from_module(module)
    try:
        _, listing = client.json('GET', '/api/v1/admin/tokens')
        current = next((t for t in listing.get('tokens', []) if t.get('name') == name), None)
        if state == 'absent':
            if current is not None and not module.check_mode:
                client.json('DELETE', '/api/v1/admin/tokens/' + path_segment(name), ok=(200, 204))
            module.exit_json(changed=current is not None)
        # A set: [exec, exec] is the token with the scope exec, as the box stores it.
        scopes = sorted(set(module.params['scopes']))
        if current is not None:
            held = sorted(set(current.get('scopes', [])))
            expired = expired_at(current)
            if expired is not None:
                module.fail_json(msg='%s: token %s expired at %s, and the box refuses it; it cannot be renewed in '
                                     'place: revoke it (state: absent), then make it again (state: present)'
                                     % (client.url, name, expired), record=current)
            if held != scopes:
                module.fail_json(msg='%s: token %s exists with scopes %s, not %s; revoke it first (state: absent)'
                                 % (client.url, name, ', '.join(held), ', '.join(scopes)))
            module.exit_json(changed=False, record=current)
        # Made now: its secret goes into the result, which only no_log keeps out of the output.
        # Refused before any change (and in check mode, as the real run would be).
        if not module.no_log:
            module.fail_json(msg=no_log_refusal(name))
        if module.check_mode:
            module.exit_json(changed=True)
        request = {'name': name, 'scopes': scopes}
        if module.params['expires']:
            request['expires'] = module.params['expires']
        _, made = client.json('POST', '/api/v1/admin/tokens', request, ok=(200, 201))
        secret = made.pop('token', None)
        record = made.get('token_record') or made
        module.exit_json(changed=True, token=secret, record=record)
    except LuaexecError as error:
        module.fail_json(msg=error.message)


if __name__ == '__main__':
    main()
