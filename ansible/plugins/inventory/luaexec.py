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
    C(luaexec), with C(luaexec_remote) (the remote's name), C(luaexec_url), C(luaexec_pin) and
    (unless O(tokens) is false) C(luaexec_token) set, C(ansible_connection=local), since the
    modules run on the controller, and, on the group (so that group_vars and host_vars override
    it), C(ansible_python_interpreter) the controller's own (the Python that parses the inventory).
  - The host's name is the remote's name (C(luaexec login) names a box on a port other than 443
    C(HOST:PORT), which C(--limit) takes as it is). A name that is C(all), C(ungrouped),
    C(localhost) or the name of O(group) gets the prefix C(luaexec_) (C(localhost) is the host
    C(luaexec_localhost)), since Ansible gives those names a meaning of their own. C(luaexec_remote)
    always holds the remote's own name, which the modules' C(remote) option takes.
  - Two remotes whose host names come out the same fail the inventory, naming both; rename one
    (C(luaexec logout NAME), then C(luaexec login URL --name OTHER)). Two remotes for one URL get a
    warning, since every task would run on that box twice.
  - A remote without C(name), C(url) or C(fingerprint) (or C(token), unless O(tokens) is false)
    fails the inventory, naming the remote and the file.
  - A missing remotes file fails this inventory source with a message naming the file and
    C(luaexec login). Ansible reports a source that fails as a warning and goes on without its
    hosts (the play then matches no host and ends with status 0), unless
    C(ANSIBLE_INVENTORY_UNPARSED_FAILED=true) (C([inventory] unparsed_is_failed) in
    C(ansible.cfg)) makes it fatal, which is recommended.
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

# ansible.cfg: a missing remotes file fails the run instead of matching no host
# [inventory]
# unparsed_is_failed = true
'''

import json
import os
import sys

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.utils.display import Display

display = Display()

# Names Ansible gives meanings of its own: a host by one of them would not be the remote.
RESERVED = ('all', 'ungrouped', 'localhost')
PREFIX = 'luaexec_'


def default_remotes_file(environ=None):
    """Where `luaexec` keeps its remotes: the same rule as RemotesFile.directory."""
    environ = os.environ if environ is None else environ
    config = environ.get('XDG_CONFIG_HOME', '')
    if config.startswith('/'):
        return os.path.join(config, 'luaexec', 'remotes.json')
    return os.path.join(environ.get('HOME', '/root'), '.config', 'luaexec', 'remotes.json')


def read_remotes(remotes_file):
    """The remotes of `luaexec`'s remotes file, as a list of dicts; AnsibleParserError, naming
    the file and what to do, when it is missing or not a remotes file."""
    try:
        with open(remotes_file, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as error:
        if not os.path.exists(remotes_file):
            raise AnsibleParserError('no luaexec remotes file %s: log in to each box first with '
                                     '`luaexec login https://BOX` (it writes the file), or set remotes_file '
                                     'to where it is' % remotes_file)
        raise AnsibleParserError('cannot read the luaexec remotes file %s (%s)' % (remotes_file, error))
    try:
        remotes = json.loads(data.decode('utf-8')).get('remotes', [])
        if not isinstance(remotes, list) or not all(isinstance(remote, dict) for remote in remotes):
            raise ValueError('"remotes" is not a list of objects')
    except (ValueError, AttributeError) as error:
        raise AnsibleParserError('%s is not a luaexec remotes file: %s' % (remotes_file, error))
    return remotes


def host_name(remote_name, group):
    """The inventory host of a remote: its name, as 0.1.2 had it (`HOST:PORT` works in --limit
    and names its host_vars), with the prefix luaexec_ on a name Ansible reserves or the
    plugin's group's."""
    if remote_name in RESERVED or remote_name == group:
        return PREFIX + remote_name
    return remote_name


def hosts_from(remotes, remotes_file, group, tokens=True):
    """[(host name, host variables)] for the remotes, checked: a remote missing a field, or two
    remotes for one host name, fail with the remote and the file named."""
    hosts = []
    seen = {}
    urls = {}
    needed = ('name', 'url', 'fingerprint') + (('token',) if tokens else ())
    for index, remote in enumerate(remotes):
        label = "'%s'" % remote['name'] if isinstance(remote.get('name'), str) else 'number %d' % (index + 1)
        for field in needed:
            if not isinstance(remote.get(field), str) or not remote[field]:
                raise AnsibleParserError(
                    'the remote %s in %s has no %s: log in to it again with luaexec login URL --name NAME%s'
                    % (label, remotes_file, field,
                       ' (or set tokens: false and give luaexec_token another way)' if field == 'token' else ''))
        host = host_name(remote['name'], group)
        if host in seen:
            raise AnsibleParserError(
                "the remotes '%s' and '%s' in %s would both be the host %s: rename one (luaexec logout NAME, "
                "then luaexec login URL --name OTHER)" % (seen[host], remote['name'], remotes_file, host))
        seen[host] = remote['name']
        url = remote['url'].rstrip('/')
        if url in urls:
            display.warning("the remotes '%s' and '%s' in %s are one box (%s): every task would run on it twice; "
                            "forget one with luaexec logout NAME" % (urls[url], remote['name'], remotes_file, url))
        urls[url] = remote['name']
        variables = dict(ansible_connection='local', luaexec_remote=remote['name'], luaexec_url=remote['url'],
                         luaexec_pin=remote['fingerprint'])
        if tokens:
            variables['luaexec_token'] = remote['token']
        hosts.append((host, variables))
    return hosts


class InventoryModule(BaseInventoryPlugin):
    NAME = 'luaexec.appliance.luaexec'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('luaexec.yml', 'luaexec.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        remotes_file = self.get_option('remotes_file') or default_remotes_file()
        remotes = read_remotes(remotes_file)
        hosts = hosts_from(remotes, remotes_file, self.get_option('group'), self.get_option('tokens'))
        if not hosts:
            display.warning('no remotes in %s: log in to each box first with `luaexec login https://BOX`'
                            % remotes_file)
        group = self.inventory.add_group(self.get_option('group'))
        # The modules need only Python's standard library: run them with the controller's own
        # interpreter (this process's, what ansible_playbook_python names; inventory values are
        # not templated) rather than whatever discovery finds first on PATH (a pyenv shim without
        # that version fails with a message that does not say so). A variable of the group, the
        # lowest precedence there is: group_vars and host_vars files override it (AWX, or a
        # controller whose inventory is parsed by another Python than the one that runs tasks).
        if sys.executable:
            self.inventory.set_variable(group, 'ansible_python_interpreter', sys.executable)
        for name, variables in hosts:
            host = self.inventory.add_host(name, group=group)
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
