from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.luaexec.appliance.plugins.inventory.luaexec import default_remotes_file


def test_the_remotes_file_is_where_luaexec_keeps_it():
    assert default_remotes_file({'HOME': '/home/ops'}) == '/home/ops/.config/luaexec/remotes.json'
    assert default_remotes_file({'HOME': '/home/ops', 'XDG_CONFIG_HOME': '/etc/x'}) == '/etc/x/luaexec/remotes.json'
    # A relative XDG_CONFIG_HOME is ignored, as the XDG spec and luaexec ignore it.
    assert default_remotes_file({'HOME': '/home/ops', 'XDG_CONFIG_HOME': 'rel'}) == '/home/ops/.config/luaexec/remotes.json'
