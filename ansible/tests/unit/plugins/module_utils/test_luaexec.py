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


def answer_json(value):
    body = json.dumps(value).encode()
    return b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' % (len(body), body)


def test_a_path_in_the_url_prefixes_every_request():
    server = OneShotServer(answer_json({'ok': True, 'results': [1], 'output': ''}))
    Client(server.url() + '/some/prefix/', 'secret', pin=PIN).run('return 1')
    server.thread.join(5)
    assert server.received.startswith(b'POST /some/prefix/api/v1/exec/interactive.lua HTTP/1.1\r\n')


def test_the_repin_line_names_the_remote_as_luaexec_prints_it():
    server = OneShotServer(b'')
    wrong = 'sha256//' + 'A' * 43 + '='
    with pytest.raises(LuaexecError) as raised:
        Client(server.url(), 'secret', pin=wrong, remote='box1').run('return 1')
    server.thread.join(5)
    assert server.received == b''
    lines = raised.value.message.splitlines()
    # RemoteClient's explain(.keyChanged), byte for byte.
    assert lines[0] == 'the public key of box1 (%s) is not the one you trusted; refusing to talk to it.' % server.url()
    assert lines[-2] == '  luaexec login %s --name box1 --fingerprint %s' % (server.url(), PIN)


def test_a_path_a_web_server_would_resolve_is_never_sent():
    from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import path_segment
    client = Client('https://127.0.0.1:1', 'secret', pin=PIN)
    for path in ('/api/v1/admin/config/' + path_segment('../scripts/victim.lua'), '/api/v1/admin/tokens/..',
                 '/api/v1/admin/config/a%2F%2Fb', '/api/v1/./admin'):
        with pytest.raises(LuaexecError) as raised:
            client.request('DELETE', path)
        assert raised.value.kind == 'path', raised.value.message
        assert 'refusing to send DELETE' in raised.value.message


def test_config_paths_and_script_names_follow_the_boxs_rules():
    from ansible_collections.luaexec.appliance.plugins.module_utils.luaexec import (
        config_path_problem, script_name_problem)
    for good in ('a', 'a.b', 'a/b', 'a-b_c/d.e', 'a..b', 'x' * 256):
        assert config_path_problem(good) is None, good
    for bad in ('', '.a', 'a.', '../a', 'a/../b', 'a/./b', 'a//b', '/a', 'a/', 'a b', 'x' * 257, 'a%2Fb'):
        assert config_path_problem(bad).startswith("bad path '%s': " % bad), bad
    for good in ('a.lua', 'door-bell_2.lua', 'x' * 124 + '.lua'):
        assert script_name_problem(good) is None, good
    for bad in ('', 'a', '.a.lua', 'a..lua', 'a/b.lua', '../x.lua', 'x' * 125 + '.lua'):
        assert script_name_problem(bad).startswith("bad script name '%s': " % bad), bad


class PlainServer(object):
    """A plain-HTTP server (what answers on luaexecd's HTTP port): one answer, then closes."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        connection, _ = self.listener.accept()
        try:
            connection.settimeout(5)
            connection.recv(65536)
            connection.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
        except OSError:
            pass
        finally:
            connection.close()
            self.listener.close()


def test_connection_failures_say_what_to_check():
    plain = PlainServer()
    with pytest.raises(LuaexecError) as raised:
        Client('https://127.0.0.1:%d' % plain.port, 'secret', pin=PIN).run('return 1')
    plain.thread.join(5)
    assert raised.value.message.startswith('cannot reach https://127.0.0.1:%d: ' % plain.port)
    assert raised.value.message.endswith(
        "what answers on port %d does not speak TLS: is it luaexecd's HTTPS port (not its plain-HTTP one)?"
        % plain.port)
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(LuaexecError) as raised:
        Client('https://127.0.0.1:%d' % port, 'secret', pin=PIN).run('return 1')
    assert raised.value.message == ("cannot reach https://127.0.0.1:%d: [Errno 111] Connection refused: nothing "
                                    "listens on 127.0.0.1 port %d; is luaexecd's web server (nginx) up, and is %d "
                                    "its HTTPS port?" % (port, port, port))


def test_a_body_too_large_names_the_limits():
    client = Client('https://box', 'secret', pin=PIN)
    error = client.refusal('POST', '/api/v1/exec/interactive.lua', 413, {}, b'<html>413 Request Entity Too Large</html>')
    assert error.status == 413
    assert error.message.endswith("its limit is exec.max_body in luaexecd's config and the web server's, "
                                  "client_max_body_size in nginx; send less or raise both)")
