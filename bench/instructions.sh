#!/usr/bin/env bash
# Instructions per `return 1+1` request, counted by valgrind's callgrind: luaexecd (the release
# build, the packaged config and init scripts) and the C event-loop responder, each answering
# requests on one kept FastCGI connection (bench/fcgi-client.py, what nginx sends).
#
# A count, not a time: the same on a busy machine as on an idle one, so a change to the request
# path can be judged by it where req/s swing by 15% between runs. It counts user-space
# instructions only (not the kernel's share, nor cache misses or atomic operations), and
# valgrind hides SHA extensions from the CPU, so SHA-256 counts as its AVX code: the audit
# trail's HMAC of each record (six blocks) ~12,800 instructions a request here, a few hundred
# cycles on the hardware path (the token's and the body's digests are remembered, DigestMemo).
#
# Usage: bench/instructions.sh [REQUESTS]   (default 300; prints "luaexecd N" and "evloop N")
#   luaexecd's N counts every thread: the request's and the audit writer's (docs/audit.md).
#   BENCH_BIN=DIR: luaexecd and luaexec from DIR instead of the release build (another
#   commit's, to compare).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
requests=${1:-300}
"$root/scripts/install-deps.sh" valgrind python3 gcc sqlite3
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
    "$root/scripts/build-release.sh" --product luaexecd >/dev/null && "$root/scripts/build-release.sh" --product luaexec >/dev/null
    bin=$("$root/scripts/build-release.sh" --show-bin-path)
fi

. "$root/scripts/scratch.sh"

# written N: waits until luaexecd's audit writer has stored N records (it writes a batch 250 ms
# after its first record), so that the counted window holds the writer's work for exactly the
# counted requests; at once for a build without the trail, or for the C responder.
written() {
    [ "$1" = luaexecd ] || return 0
    local stored
    for _ in $(seq 600); do
        # audit_batch since schema 7 (a batch of records to a row), audit before it.
        stored=$(sqlite3 "$work/db" 'SELECT coalesce(max(last_seq), 0) FROM audit_batch' 2>/dev/null ||
            sqlite3 "$work/db" 'SELECT coalesce(max(seq), 0) FROM audit' 2>/dev/null) || return 0
        [ "$stored" -ge "$2" ] && return 0
        sleep 0.1
    done
    echo "instructions.sh: the audit writer stored $stored of $2 records" >&2
    exit 1
}

# count NAME SOCKET TOKEN COMMAND...: starts COMMAND under callgrind, warms it up, zeroes the
# counters, sends the requests, waits for their audit records, dumps, prints NAME and the
# instructions per request (every thread's).
count() {
    local name=$1 socket=$2 token=$3
    shift 3
    valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "$@" </dev/null >/dev/null 2>"$work/$name.log" &
    daemon=$!
    for _ in $(seq 600); do [ -S "$socket" ] && break; sleep 0.1; done
    [ -S "$socket" ] || { cat "$work/$name.log" >&2; exit 1; }
    python3 "$root/bench/fcgi-client.py" "$socket" "$token" 20
    written "$name" 20
    callgrind_control -z "$daemon" >/dev/null 2>&1
    python3 "$root/bench/fcgi-client.py" "$socket" "$token" "$requests"
    written "$name" $((20 + requests))
    callgrind_control -d "$daemon" >/dev/null 2>&1
    kill "$daemon"
    wait "$daemon" 2>/dev/null || true
    daemon=""
    # The dump after zeroing (.1) holds the requests only.
    awk -v name="$name" -v n="$requests" '/^(summary|totals):/ { printf "%s %d\n", name, $2 / n; exit }' \
        "$work/$name.out.1"
}

# valgrind cannot read the toolchain's DWARF 5; the symbol table is all it needs.
strip --strip-debug -o "$work/luaexecd" "$bin/luaexecd"
token=$("$bin/luaexec" token create instructions --database "$work/db")
# A build from before the audit trail (BENCH_BIN) knows no audit.* setting: the packaged config
# without its audit section, then.
config="$root/packaging/luaexecd.conf"
audit=(--set audit.key="$work/audit.key")
if ! "$bin/luaexecd" --check-config --set audit.key=/dev/null >/dev/null 2>&1; then
    awk '/^[a-z]/ { skip = /^audit:/ } !skip' "$config" > "$work/luaexecd.conf"
    config="$work/luaexecd.conf"
    audit=()
fi
count luaexecd "$work/luaexecd.sock" "$token" "$work/luaexecd" --config "$config" \
    --set listen.socket="$work/luaexecd.sock" --set database="$work/db" "${audit[@]}" \
    --set lua.init_dir="$root/init.d"

cc -O2 -I/usr/include/lua5.4 -o "$work/evloop-responder" "$root/bench/evloop-responder.c" -llua5.4
count evloop "$work/evloop.sock" - "$work/evloop-responder" "$work/evloop.sock"
