# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How every module of the collection reaches an appliance (module_utils/luaexec.py): the
    # options they share, written once. Each module documents its own `token` (the scope it needs).
    DOCUMENTATION = r'''
options:
  url:
    description:
      - The appliance, C(https://HOST[:PORT]), as C(luaexec login) saved it. A path after the port
        (C(https://HOST/PREFIX), a box behind a reverse proxy) is kept before every request's path.
    type: str
    required: true
  pin:
    description:
      - C(sha256//) and the base64 SHA-256 of the appliance's public key, as C(luaexec remotes)
        shows it. When given, it is the trust; the certificate chain is not checked.
    type: str
  ca_path:
    description: Without O(pin), a CA file to verify the certificate with.
    type: path
  validate_certs:
    description: Without O(pin), whether to verify the certificate. False is never the default.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the answer.
    type: float
    default: 60
  remote:
    description:
      - The name C(luaexec login) saved the appliance under (C(luaexec remotes) lists them). Used
        only in the message of a changed key, so that its line
        C(luaexec login URL --name NAME --fingerprint ...) updates that remote instead of adding a
        second one for the same box (which the inventory would then list twice).
      - The C(luaexec) inventory sets the host variable C(luaexec_remote); pass it once in
        C(module_defaults), with Jinja's C(default) filter giving C(omit) for hosts from another
        inventory (docs/ansible.md shows the line). When omitted, the line has no C(--name).
    type: str
    version_added: "0.1.3"
'''
