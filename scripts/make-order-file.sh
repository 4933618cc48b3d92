#!/usr/bin/env bash
# Writes packaging/luaexecd.order: the functions luaexecd runs from start-up through its first
# requests, which scripts/build-release.sh has the linker place together (see there and
# docs/packaging.md). Run it after changes to start-up or the request path, then rebuild; a
# stale list costs resident memory (make bench shows it), never correctness: names the linker
# does not find are skipped.
#
# The trace: luaexecd from the release build runs under valgrind's callgrind with the packaged
# config and init scripts, answers a few requests over FastCGI (cgi-fcgi), and stops; every
# function of the executable that ran is listed, in the order callgrind first met it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" valgrind libfcgi-bin
"$root/scripts/build-release.sh" --product luaexecd >/dev/null
bin=$("$root/scripts/build-release.sh" --show-bin-path)

. "$root/scripts/scratch.sh"
# valgrind cannot read the toolchain's DWARF 5; the symbol table is all the trace needs.
strip --strip-debug -o "$work/luaexecd" "$bin/luaexecd"
ln -s luaexecd "$work/luaexec"
token=$("$work/luaexec" token create order --database "$work/db")

valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.out" \
    "$work/luaexecd" --config "$root/packaging/luaexecd.conf" --set listen.socket="$work/sock" \
    --set database="$work/db" --set audit.key="$work/audit.key" --set lua.init_dir="$root/init.d" </dev/null >/dev/null 2>"$work/valgrind.log" &
daemon=$!
for _ in $(seq 600); do [ -S "$work/sock" ] && break; sleep 0.1; done
[ -S "$work/sock" ] || { cat "$work/valgrind.log" >&2; exit 1; }

# What nginx sends for `curl -d BODY .../api/v1/exec/interactive.lua` (nginx/luaexec-fastcgi.conf).
request() {
    local body=$1
    env -i REQUEST_METHOD=POST DOCUMENT_URI=/api/v1/exec/interactive.lua QUERY_STRING= CONTENT_TYPE= \
        CONTENT_LENGTH=${#body} REMOTE_ADDR=127.0.0.1 REQUEST_ID=0123456789abcdef0123456789abcdef \
        HTTP_AUTHORIZATION="Bearer $token" cgi-fcgi -bind -connect "$work/sock" <<<"$body"
}
answer=$(request 'return 1+1' | tail -c 1)
[ "$answer" = 2 ] || { echo "make-order-file: luaexecd answered '$answer' to return 1+1, not 2" >&2; exit 1; }
for _ in $(seq 10); do request 'return 1+1' >/dev/null; done
request 'x = (x or 0) + 1 return x, "text", {1, 2}' >/dev/null
request 'error("an error, as a script would raise it")' >/dev/null

kill -TERM "$daemon"
wait "$daemon" || true
daemon=""

python3 - "$work/callgrind.out" "$root/packaging/luaexecd.order" <<'EOF'
import re, sys
# callgrind names each object and function once, "(id) name", then by "(id)" alone.
objects, functions, current, seen, order = {}, {}, None, set(), []
for line in open(sys.argv[1], errors="replace"):
    match = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not match:
        continue
    kind, ident, name = match.groups()
    table = objects if kind.endswith("ob") else functions
    if name is not None:
        table[ident] = name
    if kind == "ob":
        current = objects[ident]
    elif kind == "fn" and current.endswith("/luaexecd") and functions[ident] not in seen:
        seen.add(functions[ident])
        order.append(functions[ident])
with open(sys.argv[2], "w") as out:
    out.write("\n".join(order) + "\n")
print(f"{sys.argv[2]}: {len(order)} functions", file=sys.stderr)
EOF
