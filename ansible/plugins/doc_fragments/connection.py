# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How every module of the collection reaches an appliance (module_utils/luaexec.py): the
    # options they share, written once. Each module documents its own `token` (the scope it needs).
    DOCUMENTATION = r'''
options:
  url:
    description: The appliance, C(https://HOST[:PORT]).
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
'''
