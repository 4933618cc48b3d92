#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: config
short_description: Set or unset a config value on a luaexec appliance
description:
  - Declares one path of the appliance's config store (SPEC V5). A change is saved, then the
    Lua functions registered for the path run, as a chunk's C(config.set) does.
  - Idempotent. Nothing is sent when the path already holds the value, type included (C(1),
    C(1.0), C('1') and C(true) are four different values).
version_added: "0.1.0"
author: luaexec maintainers
extends_documentation_fragment:
  - luaexec.appliance.connection
options:
  path:
    description: The config path, C(a.b.c).
    type: str
    required: true
  value:
    description: A string, number or boolean; required with O(state=present).
    type: raw
  state:
    description: V(present) sets O(value); V(absent) unsets the path.
    type: str
    choices: [present, absent]
    default: present
  token:
    description: A token with the C(admin) scope.
    type: str
    required: true
notes:
  - Part of the C(luaexec.appliance.luaexec) action group. Supports check mode and diff mode.
'''

EXAMPLES = r'''
- name: Ring for three seconds
  luaexec.appliance.config:
    path: doorbell.ring_seconds
    value: 3
'''

RETURN = r'''
value:
  description: The path's value after the task; null when unset.
  returned: always
  type: raw
previous:
  description: The path's value before the task; null when it was unset.
  returned: always
  type: raw
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import (
    LuaexecError, client_from_module, luaexec_argument_spec, path_segment)


def same(a, b):
    # 1 == 1.0 == True in Python; in the config store they are three values.
    return type(a) is type(b) and a == b


def main():
    spec = luaexec_argument_spec()
    spec.update(
        path=dict(type='str', required=True),
        value=dict(type='raw'),
        state=dict(type='str', default='present', choices=['present', 'absent']),
    )
    module = AnsibleModule(argument_spec=spec, required_if=[('state', 'present', ('value',))],
                           supports_check_mode=True)
    config_path, state, value = module.params['path'], module.params['state'], module.params['value']
    if state == 'present' and not isinstance(value, (str, int, float, bool)):
        module.fail_json(msg='value must be a string, a number or a boolean, not %s' % type(value).__name__)
    client = client_from_module(module)
    path = '/api/v1/admin/config/' + path_segment(config_path)
    try:
        status, current = client.json('GET', path, ok=(200, 404))
        previous = current.get('value') if status == 200 else None
        if state == 'absent':
            changed = status == 200
            if changed and not module.check_mode:
                client.json('DELETE', path, ok=(200, 204))
            module.exit_json(changed=changed, value=None if changed else previous, previous=previous,
                             diff=dict(before='%s: %r\n' % (config_path, previous), after=''))
        changed = status != 200 or not same(previous, value)
        if changed and not module.check_mode:
            client.json('PUT', path, {'value': value})
        module.exit_json(changed=changed, value=value, previous=previous,
                         diff=dict(before='' if status != 200 else '%s: %r\n' % (config_path, previous),
                                   after='%s: %r\n' % (config_path, value)))
    except LuaexecError as error:
        module.fail_json(msg=error.message)


if __name__ == '__main__':
    main()
