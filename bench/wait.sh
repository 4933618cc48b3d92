#!/usr/bin/env bash
# SPEC P4: what waits costs little. Run by bench/run.sh (make bench), or alone with the directory
# of a release build: bench/wait.sh BIN_DIR [SECONDS] [ROUNDS]. Prints markdown rows on stdout.
#
# - 1,000 requests asleep in sleep() at once: luaexecd's resident memory with them against
#   without, and the p99 of `return 1+1` at 32 connections served beside them against alone
#   (interleaved rounds, medians).
# - 100 timers firing every second: luaexecd's CPU over a quiet interval with them against
#   without, as a share of one core.
#
# Its own luaexecd (listen.max_connections raised: each sleeper holds a FastCGI connection) and
# its own nginx (no rate limit, room for 2,000 connections), on loopback.
set -euo pipefail
bin=$1 seconds=${2:-10} rounds=${3:-3}
root="$(cd "$(dirname "$0")/.." && pwd)"
port=${BENCH_WAIT_PORT:-18480}
run=$(mktemp -d /tmp/luaexec-wait.XXXXXX)
ulimit -n 16384 2>/dev/null || true
pids=()
cleanup() {
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT

user_directive=""
[ "$(id -u)" = 0 ] && user_directive="user root root;"
grep '^fastcgi_param' "$root/nginx/luaexec-fastcgi.conf" > "$run/params.conf"
cat > "$run/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $run/nginx.pid; error_log $run/error.log warn; $user_directive
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off; client_body_temp_path $run/body; fastcgi_temp_path $run/fcgi;
    upstream luaexecd { server unix:$run/luaexecd.sock; keepalive 32; }
    server {
        listen 127.0.0.1:$port; client_max_body_size 2m;
        location /api/v1/ {
            set \$luaexec_path \$document_uri;
            fastcgi_pass luaexecd; fastcgi_keep_conn on; fastcgi_read_timeout 120s;
            include $run/params.conf;
        }
    }
}
EOF
token=$("$bin/luaexec" token create bench --scope exec --scope admin --database "$run/luaexec.db")
"$bin/luaexecd" --config "$root/packaging/luaexecd.conf" --set listen.socket="$run/luaexecd.sock" \
    --set database="$run/luaexec.db" --set audit.key="$run/audit.key" --set lua.init_dir="$root/init.d" \
    --set listen.max_connections=4096 2>>"$run/luaexecd.log" &
pid=$!
pids+=($pid)
for _ in $(seq 200); do [ -S "$run/luaexecd.sock" ] && break; sleep 0.05; done
nginx -p "$run" -c "$run/nginx.conf" &
pids+=($!)
for _ in $(seq 200); do [ -f "$run/nginx.pid" ] && break; sleep 0.05; done
url="http://127.0.0.1:$port/api/v1/exec/interactive.lua"
export BENCH_TOKEN=$token

p99() {
    wrk -t2 -c32 -d"${seconds}s" --latency -s "$root/bench/post.lua" "$url" 2>&1 | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /^ +99%/ { print ms($2) }'
}
rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$pid/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
waiting() {
    curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/admin/status" \
        | awk -F'"why":"sleep"' '{ n += NF - 1 } END { print n + 0 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf 'sleep(25) return 1' > "$run/sleeper.lua"
p99 >/dev/null  # steady state
alone="" beside="" rss_without="" rss_with="" held=""
for _ in $(seq "$rounds"); do
    alone+="$(p99)"$'\n'
    rss_without+="$(rss_kb)"$'\n'
    # 1,000 clients, each with one request asleep, for the length of the measurement.
    BENCH_BODY_FILE="$run/sleeper.lua" wrk -t2 -c1000 -d"$((seconds + 15))s" --timeout 60s \
        -s "$root/bench/post.lua" "$url" >/dev/null 2>&1 &
    sleepers=$!
    count=0
    for _ in $(seq 100); do
        count=$(waiting)
        [ "$count" -ge 1000 ] && break
        sleep 0.1
    done
    held+="$count"$'\n'
    rss_with+="$(rss_kb)"$'\n'
    beside+="$(p99)"$'\n'
    kill "$sleepers" 2>/dev/null || true
    wait "$sleepers" 2>/dev/null || true
    # The sleepers' clients are gone: their chunks end at once (peerGone).
    for _ in $(seq 100); do [ "$(waiting)" -eq 0 ] && break; sleep 0.1; done
done
p99_alone=$(echo "$alone" | awk 'NF' | median)
p99_beside=$(echo "$beside" | awk 'NF' | median)
held_median=$(echo "$held" | awk 'NF' | median)
# Against the resident set before the first sleepers: glibc keeps what the first thousand
# allocated, so later rounds' "without" already holds it and a per-round difference hides it.
rss_delta_mb=$(awk -v base="$(echo "$rss_without" | awk 'NF' | head -1)" \
    'NF && $1 > max { max = $1 } END { printf "%.1f", (max - base) / 1024 }' <<<"$rss_with")

# 100 timers every second: luaexecd's CPU over a quiet interval, with against without.
quiet=$((seconds * 2))
before=$(cpu_ticks); sleep "$quiet"; idle_ticks=$(( $(cpu_ticks) - before ))
curl -s -H "Authorization: Bearer $token" --data-binary \
    'for i = 1, 100 do timer.every(1, function() local x = 0 for j = 1, 100 do x = x + j end end) end' "$url" >/dev/null
before=$(cpu_ticks); sleep "$quiet"; timer_ticks=$(( $(cpu_ticks) - before ))
hz=$(getconf CLK_TCK)
timers_core=$(awk -v a="$idle_ticks" -v b="$timer_ticks" -v s="$quiet" -v hz="$hz" \
    'BEGIN { printf "%.2f", (b - a) * 100 / (s * hz) }')

awk -v a="$p99_alone" -v b="$p99_beside" -v m="$rss_delta_mb" -v h="$held_median" -v t="$timers_core" \
    -v r="$rounds" -v s="$seconds" 'BEGIN {
    ratio = a > 0 ? b / a : 0
    printf "| requests asleep in `sleep` at once (median of rounds) | %d |\n", h
    printf "| resident memory they add (the most with them, against before the first) | %.1f MB (target ≤ 16 MB: %s) |\n", m, (m <= 16 ? "met" : "not met")
    printf "| p99 of `return 1+1`, 32 connections, alone | %.2f ms |\n", a
    printf "| the same beside them | %.2f ms (%.2f×; target ≤ 1.10×: %s) |\n", b, ratio, (ratio <= 1.10 ? "met" : "not met")
    printf "| 100 timers every second, CPU beyond idle | %.2f%% of a core (target < 2%%: %s) |\n", t, (t < 2 ? "met" : "not met")
}'
