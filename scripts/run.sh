#!/usr/bin/env bash
# `make run`: build, then serve nginx + luaexecd on https://127.0.0.1:$LUAEXEC_PORT in the
# foreground, with every file under $LUAEXEC_RUN_DIR (default .run/). Ctrl-C stops both.
# LUAEXEC_SERVER=lighttpd or apache puts that web server in nginx's place (docs/servers.md).
# LUAEXEC_BIN_DIR names binaries to run instead of building the release ones (the tests run
# their debug build this way).
#
# Run as root, it does as root only what needs root (installing packages, building, making the
# user), then runs the rest as another user: luaexecd runs chunks from anyone with an exec token,
# and never as root. That user is the one who ran `sudo make run` (SUDO_USER), or else the
# system user `luaexec`, made when missing as the Debian package makes it. The run directory
# becomes that user's (mode 0700, what an earlier run as root left in it included).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${LUAEXEC_PORT:-8443}
http_port=${LUAEXEC_HTTP_PORT:-8080}
run_dir=${LUAEXEC_RUN_DIR:-$root/.run}
server=${LUAEXEC_SERVER:-nginx}
case $server in
    nginx | lighttpd | apache) ;;
    *) echo "make run: LUAEXEC_SERVER is '$server'; it takes nginx (the default), lighttpd or apache" >&2; exit 2 ;;
esac
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)

"$root/scripts/install-deps.sh"
if [ -n "${LUAEXEC_BIN_DIR:-}" ]; then
    bin=$LUAEXEC_BIN_DIR
else
    (cd "$root" && swift build -c release --product luaexecd && swift build -c release --product luaexec)
    bin=$(cd "$root" && swift build -c release --show-bin-path)
fi

if [ "$(id -u)" = 0 ]; then
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && id -u "$SUDO_USER" >/dev/null 2>&1; then
        user=$SUDO_USER
    else
        user=luaexec
        getent passwd "$user" >/dev/null ||
            adduser --system --group --quiet --home /nonexistent --no-create-home --gecos "luaexec daemon" "$user"
    fi
    group=$(id -gn "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    as_user() { setpriv --reuid="$user" --regid="$group" --init-groups -- "$@"; }
    unreachable() {
        echo "make run: $user cannot reach $1, and luaexecd never runs as root;" \
            "run make run as a user who can read the checkout (or with sudo from one)" >&2
        exit 1
    }
    for need in "$bin/luaexecd" "$bin/luaexec" "$root/scripts/run.sh" "$root/init.d" "$root/web"; do
        as_user test -r "$need" -a -x "$need" || unreachable "$need"
    done
    owner=$(stat -c %U "$run_dir")
    if [ "$owner" = root ]; then
        chown -R "$user:$group" "$run_dir"
    elif [ "$owner" != "$user" ]; then
        echo "make run: $run_dir belongs to $owner, but would run as $user; remove it or set LUAEXEC_RUN_DIR" >&2
        exit 1
    fi
    as_user test -w "$run_dir" -a -x "$run_dir" || unreachable "$run_dir"
    echo "make run: as root; luaexecd and $server run as $user" >&2
    exec setpriv --reuid="$user" --regid="$group" --init-groups -- env HOME="$home" USER="$user" LOGNAME="$user" \
        LUAEXEC_BIN_DIR="$bin" LUAEXEC_RUN_DIR="$run_dir" LUAEXEC_SERVER="$server" "$root/scripts/run.sh"
fi

# Everything the run makes (database, token, certificate, logs) is the user's alone.
umask 077
chmod 0700 "$run_dir"

"$root/scripts/make-cert.sh" "$run_dir/cert.pem" "$run_dir/key.pem"
socket="$run_dir/luaexecd.sock"
case $server in
    nginx)
        "$root/scripts/render-nginx.sh" "$run_dir" "$socket" "127.0.0.1:$port" "127.0.0.1:$http_port" ":$port" \
            "$run_dir/cert.pem" "$run_dir/key.pem" ;;
    lighttpd | apache)
        "$root/scripts/render-$server.sh" "$run_dir" "$socket" "127.0.0.1:$port" "$http_port" ":$port" \
            "$run_dir/cert.pem" "$run_dir/key.pem" ;;
esac

# The audit trail's key (docs/audit.md), made before the token, as the package's postinst does,
# so that the token's making is on record (luaexecd would make it at start otherwise).
[ -e "$run_dir/audit.key" ] || (umask 077 && openssl rand -hex 32 > "$run_dir/audit.key")

# A fresh admin token each run: only its digest is stored, so an old one cannot be shown again.
export LUAEXEC_RUN_DIR=$run_dir
"$bin/luaexec" token revoke make-run >/dev/null 2>&1 || true
token=$("$bin/luaexec" token create make-run --scope exec --scope admin)

pids=()
stop() {
    trap - INT TERM EXIT
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "$run_dir/token"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The shipped config with this run's paths over it: edit packaging/luaexecd.conf's copy in the
# run directory and send luaexecd SIGHUP to try a setting. The copy turns Action URLs on, so
# that the README's example answers; an installed luaexecd starts with them off.
[ -f "$run_dir/luaexecd.conf" ] ||
    sed 's/^  actions: false$/  actions: true/' "$root/packaging/luaexecd.conf" > "$run_dir/luaexecd.conf"
"$bin/luaexecd" --config "$run_dir/luaexecd.conf" --set listen.socket="$socket" \
    --set database="$run_dir/luaexec.db" --set audit.key="$run_dir/audit.key" --set lua.init_dir="$root/init.d" \
    2>>"$run_dir/logs/luaexecd.log" &
pids+=($!)
case $server in
    nginx) nginx -p "$run_dir" -c "$run_dir/nginx.conf" & ;;
    lighttpd) /usr/sbin/lighttpd -D -f "$run_dir/lighttpd.conf" & ;;
    apache) /usr/sbin/apache2 -f "$run_dir/apache2.conf" -D FOREGROUND & ;;
esac
pids+=($!)

# Wait until the whole chain answers (or give up after 30 s).
for _ in $(seq 300); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
        "https://127.0.0.1:$port/api/v1/exec/interactive.lua" -d 'return 1' || true)
    [ "$code" = 200 ] && break
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "a server exited; see $run_dir/logs/" >&2; exit 1; }
    done
    sleep 0.1
done
[ "$code" = 200 ] || { echo "luaexec did not answer within 30 s; see $run_dir/logs/" >&2; exit 1; }

# Written aside and renamed: whoever waits for the file (a test, a script) never reads it half
# written.
(umask 077 && printf '%s\n' "$token" > "$run_dir/token.new" && mv "$run_dir/token.new" "$run_dir/token")
# The public key's SHA-256, as `luaexec login --fingerprint` and `curl --pinnedpubkey` take it.
fingerprint="sha256//$(openssl x509 -in "$run_dir/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | openssl enc -base64)"
cat <<MSG

luaexec is serving on https://127.0.0.1:$port behind $server (logs in $run_dir/logs, Ctrl-C stops it).
Admin token (also in $run_dir/token):

    $token

Try:

    curl -k -H "Authorization: Bearer $token" -i "https://127.0.0.1:$port/api/v1/exec/interactive.lua" -d 'system.toast("hello world")'
    curl -k -i "https://127.0.0.1:$port/api/v1/exec/interactive.lua?AuthToken=$token" -d 'return sip.calls.get_all()[1]:getState()'

The web console: https://127.0.0.1:$port/ (accept the self-signed certificate, paste the token).
The terminal client, with the certificate's key pinned:

    LUAEXEC_TOKEN=\$(cat $run_dir/token) $bin/luaexec login https://127.0.0.1:$port --name dev --fingerprint $fingerprint
    $bin/luaexec repl

MSG
wait -n "${pids[@]}" || true
echo "a server exited; stopping (logs in $run_dir/logs)" >&2
exit 1
