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
  - O(path) and O(value) are checked before any request; a path the box would not take, or an
    integer outside the signed 64-bit range the box keeps integers in, fails the task and nothing
    is sent.
  - Diff mode shows the value before and after as JSON (C(true), C("3"), C(3), C(3.0)).
version_added: "0.1.0"
author: luaexec maintainers
extends_documentation_fragment:
  - luaexec.appliance.connection
options:
  path:
    description:
      - The config path, C(a.b.c).
      - 1 to 256 letters, digits, C(.), C(_), C(-) and C(/), not starting or ending with C(.),
        with no empty, C(.) or C(..) part between slashes (the box's rule; the web server would
        resolve such parts to another resource).
    type: str
    required: true
  value:
    description:
      - A string, number or boolean; required with O(state=present).
      - An integer must fit in a signed 64 bits (C(-9223372036854775808) to C(9223372036854775807)),
        as the box keeps it; a float must be finite.
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

- name: Forget a setting
  luaexec.appliance.config:
    path: doorbell.old_tune
    state: absent
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

import math

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import (
    LuaexecError, client_from_module, config_path_problem, json_text, luaexec_argument_spec, path_segment)

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def same(a, b):
    # 1 == 1.0 == True in Python; in the config store they are three values.
    return type(a) is type(b) and a == b


def value_problem(value):
    """Why the config store cannot hold `value` as given; None when it can."""
    if isinstance(value, bool) or isinstance(value, str):
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return ('value %d is outside the signed 64-bit range the config store keeps integers in '
                '(%d to %d): it could never match what the box stores' % (value, INT64_MIN, INT64_MAX))
    if isinstance(value, float):
        return None if math.isfinite(value) else 'value must be a finite number, not %s' % value
    return 'value must be a string, a number or a boolean, not %s' % type(value).__name__


def shown(config_path, value):
    return '%s: %s\n' % (config_path, json_text(value))


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
    # Checked before any request: a path with '..' would reach another resource (nginx decodes
    # %2F and resolves it), and an integer past 64 bits would never match the stored value.
    problem = config_path_problem(config_path)
    if problem is None and state == 'present':
        problem = value_problem(value)
    if problem is not None:
        module.fail_json(msg=problem)
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
                             diff=dict(before=shown(config_path, previous) if changed else '', after=''))
        changed = status != 200 or not same(previous, value)
        if changed and not module.check_mode:
            client.json('PUT', path, {'value': value})
        module.exit_json(changed=changed, value=value, previous=previous,
                         diff=dict(before='' if status != 200 else shown(config_path, previous),
                                   after=shown(config_path, value)))
    except LuaexecError as error:
        module.fail_json(msg=error.message)


if __name__ == '__main__':
    main()
