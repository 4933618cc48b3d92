# Unit tests of the shared client (module_utils/luaexec.py), run by pytest from the luaexec
# repository's integration tests (AnsibleTests.swift) with the stacks' certificate:
# LUAEXEC_TEST_CERT, LUAEXEC_TEST_KEY, and LUAEXEC_TEST_PIN as openssl computes it.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import ssl
import threading

import pytest

from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import Client, LuaexecError, spki_pin

CERT = os.environ['LUAEXEC_TEST_CERT']
KEY = os.environ['LUAEXEC_TEST_KEY']
PIN = os.environ['LUAEXEC_TEST_PIN']


def test_pin_is_what_openssl_computes():
    with open(CERT) as handle:
        der = ssl.PEM_cert_to_DER_cert(handle.read())
    assert spki_pin(der) == PIN


class OneShotServer(object):
    """A TLS server with the stacks' certificate that answers one request with `answer` and
    records every byte it received after the handshake."""

    def __init__(self, answer):
        self.answer = answer
        self.received = b''
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(CERT, KEY)
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, args=(context,))
        self.thread.start()

    def serve(self, context):
        connection, _ = self.listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.settimeout(5)
                # The whole request, body included, before the answer: an answer to half a
                # request, then a close, can reach the client as a reset instead.
                while not self.complete():
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    self.received += chunk
                tls.sendall(self.answer)
        except (ssl.SSLError, OSError):
            pass
        finally:
            self.listener.close()

    def complete(self):
        head, separator, body = self.received.partition(b'\r\n\r\n')
        if not separator:
            return False
        for line in head.split(b'\r\n')[1:]:
            name, _, value = line.partition(b':')
            if name.strip().lower() == b'content-length':
                return len(body) >= int(value)
        return True

    def url(self):
        return 'https://127.0.0.1:%d' % self.port


def test_the_pinned_key_is_talked_to():
    body = json.dumps({'ok': True, 'results': [1], 'output': '', 'elapsed_ms': 0.1}).encode()
    server = OneShotServer(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' % (len(body), body))
    answer = Client(server.url(), 'secret', pin=PIN).run('return 1')
    server.thread.join(5)
    assert answer['results'] == [1]
    assert server.received.startswith(b'POST /api/v1/exec/interactive.lua HTTP/1.1\r\n')
    assert b'Authorization: Bearer secret\r\n' in server.received


def test_a_changed_key_sends_nothing_and_says_how_to_repin():
    server = OneShotServer(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')
    wrong = 'sha256//' + 'A' * 43 + '='
    with pytest.raises(LuaexecError) as raised:
        Client(server.url(), 'secret', pin=wrong).run('return 1')
    server.thread.join(5)
    assert server.received == b''
    assert raised.value.kind == 'pin'
    assert raised.value.message.splitlines()[-2] == '  luaexec login %s --fingerprint %s' % (server.url(), PIN)


def test_without_a_pin_a_self_signed_certificate_is_refused_with_what_to_do():
    server = OneShotServer(b'')
    with pytest.raises(LuaexecError) as raised:
        Client(server.url(), 'secret').run('return 1')
    server.thread.join(5)
    assert server.received == b''
    assert 'pin its key with pin: sha256//...' in raised.value.message


def test_urls_and_pins_are_checked_before_connecting():
    with pytest.raises(LuaexecError) as raised:
        Client('http://box', 'secret')
    assert raised.value.message == 'http://box: the url must be https://HOST[:PORT] (luaexec answers over HTTPS only)'
    with pytest.raises(LuaexecError) as raised:
        Client('https://box', 'secret', pin='sha256//short')
    assert 'pin must be sha256// and 44 base64 characters' in raised.value.message


def test_a_refusal_names_the_box_and_the_missing_scope():
    client = Client('https://box:8443', 'secret', pin=PIN)
    error = client.refusal(
        'GET', '/api/v1/admin/tokens', 403,
        {'www-authenticate': 'Bearer realm="luaexec", error="insufficient_scope", scope="admin"'},
        b'{"ok":false,"error":{"kind":"http","message":"the token lacks the \'admin\' scope"}}')
    assert error.message == ("https://box:8443: GET /api/v1/admin/tokens answered HTTP 403: the token lacks the 'admin' "
                             "scope (Bearer realm=\"luaexec\", error=\"insufficient_scope\", scope=\"admin\")")
    assert error.status == 403
