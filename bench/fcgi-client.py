#!/usr/bin/env python3
"""A FastCGI client for bench/instructions.sh: N requests on one kept connection, as nginx
sends them to luaexecd (the params of nginx/luaexec-fastcgi.conf and a few request headers),
each answer checked to end in the expected body.

Usage: fcgi-client.py SOCKET TOKEN COUNT [BODY] [EXPECTED]
"""
import socket
import struct
import sys


def record(kind, request_id, content):
    padding = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", 1, kind, request_id, len(content), padding, 0) + content + b"\0" * padding


def pair(name, value):
    def length(data):
        return bytes([len(data)]) if len(data) < 128 else struct.pack(">I", len(data) | 0x80000000)
    return length(name) + length(value) + name + value


def main():
    path, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    body = (sys.argv[4] if len(sys.argv) > 4 else "return 1+1").encode()
    expected = (sys.argv[5] if len(sys.argv) > 5 else "2").encode()
    params = [
        ("REQUEST_METHOD", "POST"), ("DOCUMENT_URI", "/api/v1/exec/interactive.lua"), ("QUERY_STRING", ""),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"), ("CONTENT_LENGTH", str(len(body))),
        ("REMOTE_ADDR", "127.0.0.1"), ("REQUEST_ID", "0123456789abcdef0123456789abcdef"),
        ("HTTP_HOST", "127.0.0.1:18080"), ("HTTP_AUTHORIZATION", "Bearer " + token),
        ("HTTP_CONTENT_TYPE", "application/x-www-form-urlencoded"), ("HTTP_CONTENT_LENGTH", str(len(body))),
    ]
    stream = b"".join(pair(name.encode(), value.encode()) for name, value in params)
    # BEGIN_REQUEST (responder, keep the connection), PARAMS, its end, STDIN, its end.
    request = (record(1, 1, struct.pack(">HB5x", 1, 1)) + record(4, 1, stream) + record(4, 1, b"")
               + record(5, 1, body) + record(5, 1, b""))
    connection = socket.socket(socket.AF_UNIX)
    connection.connect(path)
    pending = b""
    for _ in range(count):
        connection.sendall(request)
        stdout = b""
        while True:
            while len(pending) < 8:
                pending += connection.recv(65536)
            _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", pending[:8])
            while len(pending) < 8 + length + padding:
                pending += connection.recv(65536)
            content, pending = pending[8:8 + length], pending[8 + length + padding:]
            if kind == 6:
                stdout += content
            elif kind == 3:
                break
        if not stdout.endswith(b"\r\n\r\n" + expected):
            sys.exit("fcgi-client: unexpected answer %r" % stdout[-200:])


main()
