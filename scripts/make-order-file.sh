#!/usr/bin/env bash
# Writes packaging/luaexecd.order: the functions luaexecd runs from start-up through its first
# requests, which scripts/build-release.sh has the linker place together (see there and
# docs/packaging.md). Run it after changes to start-up or the request path, then rebuild; a
# stale list costs resident memory (make bench shows it), never correctness: names the linker
# does not find are skipped.
#
# The trace: luaexecd from the release build runs under valgrind's callgrind with the packaged
# config and init scripts, answers a few requests over FastCGI (cgi-fcgi), and stops. Its
# functions are listed in two parts: first those that ran while it served (the requests, the
# idle threads), then those only start-up ran, each part in the order callgrind first met them.
# Once serving, luaexecd drops the pages start-up touched (SystemSupport.CodePages), and what
# serving touches again comes back 64 KiB at a time (the kernel's fault-around): kept together,
# the serving code comes back in few of those.
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
# Start-up ends with the "luaexecd serving" line (and the release of its pages); its functions
# go to the first dump.
for _ in $(seq 600); do grep -q "luaexecd serving" "$work/valgrind.log" && break; sleep 0.1; done
sleep 1
callgrind_control -d "$daemon" >/dev/null 2>&1

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

# The serving part: a dump of what ran since start-up's, before the stop adds its own.
sleep 1
callgrind_control -d "$daemon" >/dev/null 2>&1
kill -TERM "$daemon"
wait "$daemon" || true
daemon=""

python3 - "$work/callgrind.out.1" "$work/callgrind.out.2" "$root/packaging/luaexecd.order" <<'EOF'
import re, sys

def functions_of(path):
    """The executable's functions with a cost in one dump, in the order the dump lists them."""
    # callgrind names each object and function once, "(id) name", then by "(id)" alone.
    objects, functions, current, order = {}, {}, None, {}
    for line in open(path, errors="replace"):
        match = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not match:
            continue
        kind, ident, name = match.groups()
        table = objects if kind.endswith("ob") else functions
        if name is not None:
            table[ident] = name
        if kind == "ob":
            current = objects[ident]
        elif kind == "fn" and current.endswith("/luaexecd"):
            order.setdefault(functions[ident], None)
    return list(order)

startup, serving = functions_of(sys.argv[1]), functions_of(sys.argv[2])
order = serving + [name for name in startup if name not in set(serving)]
with open(sys.argv[3], "w") as out:
    out.write("\n".join(order) + "\n")
print(f"{sys.argv[3]}: {len(order)} functions, {len(serving)} of them serving", file=sys.stderr)
EOF
