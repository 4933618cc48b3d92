# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
name: luaexec
short_description: The luaexec appliances C(luaexec login) saved
description:
  - Reads the remotes file C(luaexec login) writes (C($XDG_CONFIG_HOME/luaexec/remotes.json),
    by default C(~/.config/luaexec/remotes.json)) and makes a host of each remote, in the group
    C(luaexec), with C(luaexec_url), C(luaexec_pin) and (unless O(tokens) is false)
    C(luaexec_token) set, C(ansible_connection=local), since the modules run on the controller,
    and, on the group (so that group_vars and host_vars override it), C(ansible_python_interpreter)
    the controller's own (the Python that parses the inventory).
  - The inventory source is a YAML file whose name ends in C(luaexec.yml) or C(luaexec.yaml).
version_added: "0.1.0"
author: luaexec maintainers
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [luaexec.appliance.luaexec]
  remotes_file:
    description: The remotes file; default as C(luaexec) finds it.
    type: path
  tokens:
    description:
      - Whether hosts get C(luaexec_token) from the remotes file. Set false to keep tokens in a
        vault variable instead (the file's tokens then never enter Ansible's variables).
    type: bool
    default: true
  group:
    description: The group every remote joins.
    type: str
    default: luaexec
'''

EXAMPLES = r'''
# inventory/luaexec.yml
plugin: luaexec.appliance.luaexec
tokens: false
'''

import json
import os
import sys

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin


def default_remotes_file(environ=None):
    """Where `luaexec` keeps its remotes: the same rule as RemotesFile.directory."""
    environ = os.environ if environ is None else environ
    config = environ.get('XDG_CONFIG_HOME', '')
    if config.startswith('/'):
        return os.path.join(config, 'luaexec', 'remotes.json')
    return os.path.join(environ.get('HOME', '/root'), '.config', 'luaexec', 'remotes.json')


class InventoryModule(BaseInventoryPlugin):
    NAME = 'luaexec.appliance.luaexec'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('luaexec.yml', 'luaexec.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        remotes_file = self.get_option('remotes_file') or default_remotes_file()
        try:
            with open(remotes_file, 'rb') as handle:
                remotes = json.loads(handle.read().decode('utf-8')).get('remotes', [])
        except (IOError, OSError) as error:
            raise AnsibleParserError('cannot read %s (%s): log in to each box first with luaexec login https://BOX'
                                     % (remotes_file, error))
        except (ValueError, AttributeError) as error:
            raise AnsibleParserError('%s is not a luaexec remotes file: %s' % (remotes_file, error))
        group = self.inventory.add_group(self.get_option('group'))
        # The modules need only Python's standard library: run them with the controller's own
        # interpreter (this process's, what ansible_playbook_python names; inventory values are
        # not templated) rather than whatever discovery finds first on PATH (a pyenv shim without
        # that version fails with a message that does not say so). A variable of the group, the
        # lowest precedence there is: group_vars and host_vars files override it (AWX, or a
        # controller whose inventory is parsed by another Python than the one that runs tasks).
        if sys.executable:
            self.inventory.set_variable(group, 'ansible_python_interpreter', sys.executable)
        for remote in remotes:
            host = self.inventory.add_host(remote['name'], group=group)
            self.inventory.set_variable(host, 'ansible_connection', 'local')
            self.inventory.set_variable(host, 'luaexec_url', remote['url'])
            self.inventory.set_variable(host, 'luaexec_pin', remote['fingerprint'])
            if self.get_option('tokens'):
                self.inventory.set_variable(host, 'luaexec_token', remote['token'])
