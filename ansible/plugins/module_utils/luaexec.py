# -*- coding: utf-8 -*-
# The one client every module of luaexec.appliance uses: HTTPS to a luaexec's API with the
# appliance's public key pinned as `luaexec login` pins it, the Python standard library only
# (http.client and ssl), and errors that name the box and say what to do.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import http.client
import json
import re
import socket
import ssl
from urllib.parse import quote, unquote, urlsplit


def luaexec_argument_spec():
    """The options every module takes; module_defaults of group/luaexec.appliance.luaexec sets them."""
    return dict(
        url=dict(type='str', required=True),
        token=dict(type='str', required=True, no_log=True),
        pin=dict(type='str'),
        ca_path=dict(type='path'),
        validate_certs=dict(type='bool', default=True),
        timeout=dict(type='float', default=60.0),
        remote=dict(type='str'),
    )


# Config paths as the box takes them (StateStore.isValidPath, persist.c), and no empty, '.' or
# '..' part between slashes: nginx decodes %2F and resolves such parts, so `../scripts/x`
# would reach another resource than the config path.
_CONFIG_PATH = re.compile(r'[A-Za-z0-9._/-]{1,256}\Z')
CONFIG_PATH_RULE = ("use 1 to 256 letters, digits, '.', '_', '-' and '/', not starting or ending with '.', "
                    "with no empty, '.' or '..' part between slashes")


def config_path_problem(path):
    """Why `path` is not a config path, for a person; None when it is one."""
    if (_CONFIG_PATH.match(path) and not path.startswith('.') and not path.endswith('.')
            and not any(part in ('', '.', '..') for part in path.split('/'))):
        return None
    return "bad path '%s': %s" % (path, CONFIG_PATH_RULE)


# Script names as the box takes them (ScriptStore.nameProblem): one URL path segment.
_SCRIPT_NAME = re.compile(r'[A-Za-z0-9._-]{1,128}\Z')
SCRIPT_NAME_RULE = ("use 1 to 128 bytes of letters, digits, '.', '_' and '-', ending in '.lua', "
                    "not starting with '.' or holding '..'")


def script_name_problem(name):
    """Why `name` is not a stored script's name, for a person; None when it is one."""
    if _SCRIPT_NAME.match(name) and name.endswith('.lua') and not name.startswith('.') and '..' not in name:
        return None
    return "bad script name '%s': %s" % (name, SCRIPT_NAME_RULE)


def _resolved_parts(path):
    """The parts of a request path that a web server would resolve or merge after decoding
    it (empty, '.' and '..'), so that the request would reach another resource."""
    decoded = unquote(path.split('?', 1)[0])
    return [part for part in decoded.split('/')[1:] if part in ('', '.', '..')]


# What OpenSSL says when the other end answers in plain HTTP (a url naming the HTTP port).
_NOT_TLS = ('WRONG_VERSION_NUMBER', 'HTTP_REQUEST', 'PACKET_LENGTH_TOO_LONG', 'RECORD_LAYER_FAILURE',
            'UNKNOWN_PROTOCOL')


class LuaexecError(Exception):
    """A failed exchange, in words for the person running the playbook."""

    def __init__(self, message, status=None, kind=None, answer=None):
        super(LuaexecError, self).__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.answer = answer


def _der_item(data, offset):
    """(tag, start of contents, end of contents) of the DER item at offset."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset:offset + count], 'big')
        offset += count
    return tag, offset, offset + length


def spki_pin(certificate_der):
    """`sha256//BASE64` of a certificate's SubjectPublicKeyInfo: what `luaexec login` pins and
    curl's --pinnedpubkey takes (openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256)."""
    _, start, _ = _der_item(certificate_der, 0)  # Certificate
    _, offset, _ = _der_item(certificate_der, start)  # TBSCertificate
    fields = []
    while len(fields) < 7:
        tag, content, end = _der_item(certificate_der, offset)
        fields.append((tag, offset, end))
        offset = end
    # [0] version is optional: the key is the sixth field after it.
    if fields[0][0] == 0xA0:
        fields = fields[1:]
    _, spki_start, spki_end = fields[5]
    digest = hashlib.sha256(certificate_der[spki_start:spki_end]).digest()
    return 'sha256//' + base64.b64encode(digest).decode('ascii')


class _PinnedConnection(http.client.HTTPSConnection):
    """Checks the pin right after the TLS handshake, before a byte of the request is sent."""

    def __init__(self, host, port, pin, context, timeout):
        http.client.HTTPSConnection.__init__(self, host, port, context=context, timeout=timeout)
        self.pin = pin
        self.presented = None

    def connect(self):
        http.client.HTTPSConnection.connect(self)
        if self.pin is None:
            return
        self.presented = spki_pin(self.sock.getpeercert(binary_form=True))
        if self.presented != self.pin:
            self.sock.close()
            self.sock = None
            raise _KeyChanged(self.presented)


class _KeyChanged(Exception):
    def __init__(self, presented):
        Exception.__init__(self, presented)
        self.presented = presented


class Client(object):
    """One luaexec, by URL and token. `pin` (sha256//...) is checked instead of a CA; without
    it, the certificate must verify against `ca_path` or the system's CAs, unless
    `validate_certs` is false (never silently)."""

    def __init__(self, url, token, pin=None, ca_path=None, validate_certs=True, timeout=60.0, remote=None):
        parts = urlsplit(url.rstrip('/'))
        if parts.scheme != 'https' or not parts.hostname:
            raise LuaexecError('%s: the url must be https://HOST[:PORT] (luaexec answers over HTTPS only)' % url)
        if parts.query or parts.fragment:
            raise LuaexecError('%s: the url must be https://HOST[:PORT][/PATH], without ? or #' % url)
        self.url = url.rstrip('/')
        self.host = parts.hostname
        self.port = parts.port or 443
        # A path in the url (a box behind a reverse proxy under /PREFIX) is the prefix of every
        # request's path, as `luaexec` puts its base URL before each.
        self.prefix = parts.path.rstrip('/')
        # The name `luaexec login` saved the box under, for the re-pin line; None when unknown.
        self.remote = remote or None
        self.token = token
        self.pin = pin
        self.timeout = timeout
        if pin is not None and not (pin.startswith('sha256//') and len(pin) == 52):
            raise LuaexecError('%s: pin must be sha256// and 44 base64 characters, as `luaexec remotes` shows it' % self.url)
        if pin is not None:
            # The pin is the trust: the certificate is self-signed on an appliance.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif validate_certs:
            context = ssl.create_default_context(cafile=ca_path)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.context = context

    def repin_message(self, presented):
        """What to say when the box presents another key than the pin: the line that trusts the
        new key is the one `luaexec` prints (RemoteClient's explain), with --name when the
        remote's name is known, so that following it updates that remote instead of adding a
        second one for the same box."""
        box = '%s (%s)' % (self.remote, self.url) if self.remote else self.url
        name = ' --name %s' % self.remote if self.remote else ''
        return ('the public key of %s is not the one you trusted; refusing to talk to it.\n'
                '  trusted:   %s\n  presented: %s\n'
                'Someone may be intercepting the connection, or the appliance has a new certificate.\n'
                'If you know it has, trust the new key with:\n'
                '  luaexec login %s%s --fingerprint %s\n'
                '(and set pin: %s where this play takes it)'
                % (box, self.pin, presented, self.url, name, presented, presented))

    def request(self, method, path, body=None, headers=None):
        """(status, headers with lower-case names, body bytes); LuaexecError when no answer came."""
        target = self.prefix + path
        resolved = _resolved_parts(target)
        if resolved:
            # Never sent: the web server would decode and resolve it to another resource.
            raise LuaexecError('%s: refusing to send %s %s: it holds %s, which the web server would resolve '
                               'to another resource' % (self.url, method, target,
                                                        ', '.join("'%s'" % part for part in resolved)),
                               kind='path')
        lines = {'Authorization': 'Bearer ' + self.token, 'Accept': 'application/json'}
        lines.update(headers or {})
        connection = _PinnedConnection(self.host, self.port, self.pin, self.context, self.timeout)
        try:
            connection.request(method, target, body=body, headers=lines)
            response = connection.getresponse()
            return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()
        except _KeyChanged as changed:
            raise LuaexecError(self.repin_message(changed.presented), kind='pin')
        except ssl.SSLCertVerificationError as error:
            raise LuaexecError(
                'cannot verify the certificate of %s: %s. An appliance has a self-signed certificate: '
                'pin its key with pin: sha256//... (luaexec remotes shows it), or give ca_path'
                % (self.url, error.verify_message), kind='connection')
        except ssl.SSLError as error:
            hint = ''
            if getattr(error, 'reason', None) in _NOT_TLS:
                hint = ('; what answers on port %d does not speak TLS: is it luaexecd\'s HTTPS port '
                        '(not its plain-HTTP one)?' % self.port)
            raise LuaexecError('cannot reach %s: %s%s' % (self.url, error, hint), kind='connection')
        except ConnectionRefusedError as error:
            message = ('cannot reach %s: %s: nothing listens on %s port %d; is luaexecd\'s web server (nginx) up, '
                       'and is %d its HTTPS port?' % (self.url, error, self.host, self.port, self.port))
            raise LuaexecError(message, kind='connection')
        except (socket.error, http.client.HTTPException) as error:
            raise LuaexecError('cannot reach %s: %s' % (self.url, error), kind='connection')
        finally:
            connection.close()

    def json(self, method, path, value=None, ok=(200,), headers=None):
        """The JSON answer of a request with a JSON body; LuaexecError for any status not in ok."""
        body = None if value is None else json.dumps(value).encode('utf-8')
        lines = {'Content-Type': 'application/json'} if body is not None else {}
        lines.update(headers or {})
        status, answer_headers, answer = self.request(method, path, body, lines)
        if status not in ok:
            raise self.refusal(method, path, status, answer_headers, answer)
        return status, _parse(answer)

    def refusal(self, method, path, status, headers, answer):
        parsed = _parse(answer)
        message = answer.decode('utf-8', 'replace').strip()
        kind = headers.get('x-lua-error')
        if isinstance(parsed, dict) and isinstance(parsed.get('error'), dict):
            message = parsed['error'].get('message', message)
            kind = kind or parsed['error'].get('kind')
        hint = ''
        if status == 403:
            scope = headers.get('www-authenticate', '')
            hint = ' (%s)' % scope if 'scope=' in scope else ''
        elif status == 401:
            hint = ': give a valid token (luaexec token create NAME --scope ... on the box)'
        elif status == 413:
            hint = (' (the request body is larger than the appliance takes: its limit is exec.max_body in '
                    'luaexecd\'s config and the web server\'s, client_max_body_size in nginx; send less or raise both)')
        return LuaexecError('%s: %s %s answered HTTP %d: %s%s' % (self.url, method, path, status, message, hint),
                            status=status, kind=kind, answer=parsed)

    def run(self, chunk, args=None, name=None, check=False):
        """Runs (or with check, compiles only) a chunk with E11 arguments; E5's answer. The chunk
        is text, or {'base64': ...} for source that is not UTF-8."""
        call = {'chunk': chunk, 'args': list(args or [])}
        if name:
            call['name'] = name
        headers = {'Content-Type': 'application/vnd.luaexec.call+json'}
        if check:
            headers['Lua-Check'] = 'syntax'
        status, answer_headers, answer = self.request(
            'POST', '/api/v1/exec/interactive.lua', json.dumps(call, ensure_ascii=False).encode('utf-8'), headers)
        if status != 200:
            raise self.refusal('POST', '/api/v1/exec/interactive.lua', status, answer_headers, answer)
        return _parse(answer)


def path_segment(text):
    return quote(text, safe='')


def json_text(value):
    """A value as the box stores and shows it, JSON (true, "héllo", 3 against 3.0), for diffs."""
    return json.dumps(value, ensure_ascii=False)


def _parse(body):
    try:
        return json.loads(body.decode('utf-8')) if body else None
    except ValueError:
        return None


def client_from_module(module):
    """The Client for a module's url, token, pin, ca_path, validate_certs and timeout."""
    params = module.params
    if not params['validate_certs'] and not params['pin']:
        module.warn('validate_certs is false and no pin is given: the appliance is not authenticated')
    try:
        return Client(params['url'], params['token'], pin=params['pin'], ca_path=params['ca_path'],
                      validate_certs=params['validate_certs'], timeout=params['timeout'],
                      remote=params.get('remote'))
    except LuaexecError as error:
        module.fail_json(msg=error.message)
