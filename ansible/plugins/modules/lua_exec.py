#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: lua_exec
short_description: Run a Lua chunk on a luaexec appliance, with arguments as data
description:
  - Runs a chunk in the appliance's resident Lua state through C(/api/v1/exec/interactive.lua),
    with O(args) passed as the chunk's C(...) (SPEC E11), and returns its results as data.
  - Runs on the controller (C(connection=local) or C(delegate_to=localhost)) over HTTPS, with
    the appliance's public key pinned as C(luaexec login) pins it.
  - In check mode the chunk is compiled on the appliance and not run (the C(Lua-Check) header, SPEC
    E12). A syntax error fails the task, and nothing on the box changes.
  - V(changed) is what the chunk says. When its first result is a table with a boolean field
    C(changed), that field; otherwise true, since a chunk is run to change something. A chunk
    that only reads returns a table with C(changed) set to false.
version_added: "0.1.0"
author: luaexec maintainers
extends_documentation_fragment:
  - luaexec.appliance.connection
options:
  chunk:
    description:
      - The Lua source text to run. One of O(chunk) and O(src) is required.
      - B(Ansible templates this text with Jinja before the module sees it), and Lua's table
        syntax is Jinja's. C({{0}}) silently becomes C(0), C({{1,2},{3,4}}) and C({#t, 0}) fail
        the task. Tag inline Lua with YAML's C(!unsafe), as the EXAMPLES do (the text is then sent
        as written; pass values in O(args), which are templated), or keep it in a file and use O(src).
    type: str
  src:
    description:
      - A file on the controller holding the chunk, sent byte for byte (never templated; a file
        that is not UTF-8 keeps its bytes).
      - A relative path is looked for as M(ansible.builtin.copy) looks for its src, in the
        role's or the playbook's C(files/) directory, then beside the playbook.
    type: path
  args:
    description:
      - The chunk's arguments, in order, as C(...). JSON types map as E5 in reverse
        (null is nil, integers stay integers, mappings and lists are tables,
        a mapping whose only key is C(base64) is the binary string it encodes).
    type: list
    elements: raw
    default: []
  chunk_name:
    description:
      - The chunk's name in error messages and tracebacks (C(@file.lua) or C(=name), SPEC E9).
        Defaults to C(@) and the file name with O(src), else C(interactive.lua).
    type: str
  token:
    description: A token with the C(exec) scope.
    type: str
    required: true
notes:
  - Part of the C(luaexec.appliance.luaexec) action group, so C(module_defaults) can set
    O(url), O(token) and O(pin) once.
  - Supports check mode (compile only) but not diff mode.
'''

EXAMPLES = r'''
# Inline Lua is marked !unsafe: Ansible would otherwise read {{ }}, {# and {% in it as Jinja.
# The values come in as args (templated as usual), never pasted into the source.
- name: Set the display's brightness on every phone
  luaexec.appliance.lua_exec:
    url: "{{ luaexec_url }}"
    token: "{{ luaexec_token }}"
    pin: "{{ luaexec_pin }}"
    chunk: !unsafe |
      local level = ...
      local before = display.brightness
      display.brightness = level
      return {changed = before ~= level, before = before}
    args: [70]
  delegate_to: localhost

- name: Run a file, read-only
  luaexec.appliance.lua_exec:
    src: files/report.lua
    args: ["{{ inventory_hostname }}", {verbose: true}]
  register: report
'''

RETURN = r'''
results:
  description: The chunk's return values, as SPEC E5 renders them (nil is null, byte strings as {base64}).
  returned: success, not in check mode
  type: list
  elements: raw
  sample: [{"changed": false, "before": 70}]
output:
  description: What the chunk printed.
  returned: success, not in check mode
  type: str
  sample: "set to 70\n"
elapsed_ms:
  description: The time the appliance spent on the chunk, in milliseconds.
  returned: success, not in check mode
  type: float
error:
  description: The Lua error (kind, message, traceback) when the chunk failed.
  returned: failure in Lua
  type: dict
'''

import base64
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import (
    LuaexecError, client_from_module, luaexec_argument_spec)


def changed_from(results):
    """The chunk's own word: a first result {changed = <boolean>, ...}; else it changed."""
    if results and isinstance(results[0], dict) and isinstance(results[0].get('changed'), bool):
        return results[0]['changed']
    return True


def main():
    spec = luaexec_argument_spec()
    spec.update(
        chunk=dict(type='str'),
        src=dict(type='path'),
        args=dict(type='list', elements='raw', default=[]),
        chunk_name=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=spec, mutually_exclusive=[('chunk', 'src')],
                           required_one_of=[('chunk', 'src')], supports_check_mode=True)
    chunk, name = module.params['chunk'], module.params['chunk_name']
    if module.params['src']:
        try:
            with open(module.params['src'], 'rb') as source:
                raw = source.read()
        except (IOError, OSError) as error:
            module.fail_json(msg='cannot read %s: %s' % (module.params['src'], error))
        name = name or '@' + os.path.basename(module.params['src'])
        try:
            chunk = raw.decode('utf-8')
        except UnicodeDecodeError:
            # Lua source may hold any bytes in its strings: such a file goes as E11's base64.
            chunk = {'base64': base64.b64encode(raw).decode('ascii')}
    client = client_from_module(module)
    try:
        answer = client.run(chunk, module.params['args'], name, check=module.check_mode)
    except LuaexecError as error:
        details = error.answer if isinstance(error.answer, dict) else {}
        module.fail_json(msg=error.message, error=details.get('error'), output=details.get('output'))
    answer = answer or {}
    if module.check_mode:
        # Nothing ran, so there is no time to report (the compile answers with an empty body).
        module.exit_json(changed=False, msg='compiled on the appliance; not run (check mode)')
    results = answer.get('results', [])
    module.exit_json(changed=changed_from(results), results=results, output=answer.get('output', ''),
                     elapsed_ms=answer.get('elapsed_ms'))


if __name__ == '__main__':
    main()
