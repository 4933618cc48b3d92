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
    RV(token); the appliance keeps only its hash, so run the task with C(no_log=true) and store
    the secret (a vault) from the registered result.
  - An existing token with the same scopes is left alone (V(changed) false, no secret). One
    whose scopes differ is not changed behind your back; the task fails and says so; revoke it
    with O(state=absent) first.
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
    description: Its scopes (C(exec), C(admin), C(metrics), C(endpoint:NAME), C(action:NAME)); required to make one.
    type: list
    elements: str
  expires:
    description: When it expires, as C(luaexec token create) takes it (C(30d), C(12h), an ISO date); never when omitted.
    type: str
  token:
    description: A token with the C(admin) scope (the one acting, not the one made).
    type: str
    required: true
notes:
  - Part of the C(luaexec.appliance.luaexec) action group. Supports check mode.
'''

EXAMPLES = r'''
- name: A read-only token for the monitoring host
  luaexec.appliance.token:
    name: prometheus
    scopes: [metrics]
    expires: 365d
  register: made
  no_log: true
'''

RETURN = r'''
token:
  description: The new token's secret, once, when it was made now. Never logged by the module.
  returned: when a token was made
  type: str
record:
  description: The token's record (name, scopes, created, expires, last_used), never a secret.
  returned: when the token exists after the task
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import (
    LuaexecError, client_from_module, luaexec_argument_spec, path_segment)


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
        scopes = sorted(module.params['scopes'])
        if current is not None:
            if sorted(current.get('scopes', [])) != scopes:
                module.fail_json(msg='%s: token %s exists with scopes %s, not %s; revoke it first (state: absent)'
                                 % (client.url, name, ', '.join(sorted(current.get('scopes', []))), ', '.join(scopes)))
            module.exit_json(changed=False, record=current)
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
