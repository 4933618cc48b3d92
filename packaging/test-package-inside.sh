#!/bin/sh
# Runs inside the fresh Debian 12 root of test-package.sh, after the .deb is installed.
set -eu
fail=0
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok: $1"; else printf 'FAIL: %s\n  expected: %s\n  got:      %s\n' "$1" "$2" "$3"; fail=1; fi
}

echo "-- what postinst made"
check "user luaexec is a system user" "yes" "$(test "$(id -u luaexec)" -lt 1000 && echo yes)"
check "state directory" "luaexec:luaexec 700" "$(stat -c '%U:%G %a' /var/lib/luaexec)"
check "token database owned by luaexec, its alone" "luaexec:luaexec 600" "$(stat -c '%U:%G %a' /var/lib/luaexec/luaexec.db)"
check "admin token readable by root alone" "root:root 600" "$(stat -c '%U:%G %a' /etc/luaexec/admin-token)"
check "private key" "root:root 600" "$(stat -c '%U:%G %a' /etc/luaexec/tls/key.pem)"
check "audit key readable by luaexecd's user alone" "luaexec:luaexec 600" "$(stat -c '%U:%G %a' /etc/luaexec/audit.key)"
check "audit key is 64 hex digits" "yes" "$(grep -qx '[0-9a-f]\{64\}' /etc/luaexec/audit.key && echo yes)"
check "self-signed certificate" "yes" "$(openssl x509 -in /etc/luaexec/tls/cert.pem -noout >/dev/null && echo yes)"
check "site enabled" "/etc/nginx/sites-available/luaexec" "$(readlink /etc/nginx/sites-enabled/luaexec)"
check "units enabled" "yes" "$(test -L /etc/systemd/system/sockets.target.wants/luaexecd.socket && echo yes)"
check "nginx -t" "0" "$(nginx -t >/dev/null 2>&1; echo $?)"
check "luaexec token list (root, as the state's owner)" "admin" "$(luaexec token list --json | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')"

echo "-- start luaexecd as luaexecd.service does, behind a socket as luaexecd.socket makes it"
# The seed's second example talks to a desk phone's SIP stack; the package ships a stand-in
# as an example init script. Enable it for the seed.
cp /usr/share/doc/luaexec/examples/20-sip-demo.lua /etc/luaexec/init.d/
mkdir -p /run/luaexec
chown luaexec:www-data /run/luaexec
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/luaexecd.service)
user=$(sed -n 's/^User=//p' /lib/systemd/system/luaexecd.service)
setpriv --reuid="$user" --regid="$user" --clear-groups \
    systemd-socket-activate -l /run/luaexec/luaexecd.sock $exec_start </dev/null >/var/log/luaexecd.log 2>&1 &
daemon=$!  # setpriv and systemd-socket-activate exec: this is luaexecd
i=0; while [ ! -S /run/luaexec/luaexecd.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# What luaexecd.socket's SocketGroup= and SocketMode= do.
chgrp www-data /run/luaexec/luaexecd.sock
chmod 0660 /run/luaexec/luaexecd.sock
nginx
i=0; while ! curl -sk -o /dev/null https://127.0.0.1/ && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done

token=$(cat /etc/luaexec/admin-token)
url=https://127.0.0.1/api/v1/exec/interactive.lua
req() { curl -sk -o /tmp/body -w '%{http_code}' "$@"; }

echo "-- the seed's curl lines"
check "system.toast (Bearer)" "200:" "$(req -H "Authorization: Bearer $token" "$url" -d 'system.toast("hello world")'):$(cat /tmp/body)"
check "sip state (AuthToken)" "200:active" "$(req "$url?AuthToken=$token" -d 'return sip.calls.get_all()[1]:getState()'):$(cat /tmp/body)"
check "locals and globals" "200:" "$(req "$url?AuthToken=$token" -d '
local forgetful = 42
userdata = {}
userdata.rememberMe = 42
'):$(cat /tmp/body)"
check "a local is gone" "200:" "$(req "$url?AuthToken=$token" -d 'return forgetful'):$(cat /tmp/body)"
check "a global stays" "200:42" "$(req "$url?AuthToken=$token" -d 'return userdata.rememberMe'):$(cat /tmp/body)"
check "the toast reached the log" "yes" "$(grep -qF 'lua tag=toast text="hello world"' /var/log/luaexecd.log && echo yes)"

echo "-- the terminal client, as installed (it opens libcurl, libcrypto and libedit itself)"
fingerprint=$(openssl x509 -in /etc/luaexec/tls/cert.pem -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | openssl enc -base64)
mkdir -p /tmp/client
check "luaexec login --fingerprint" "0" \
    "$(HOME=/tmp/client LUAEXEC_TOKEN=$token luaexec login https://127.0.0.1 --fingerprint "sha256//$fingerprint" >/dev/null 2>&1; echo $?)"
check "luaexec eval" "42" "$(HOME=/tmp/client luaexec eval -e 'return userdata.rememberMe' 2>&1)"

echo "-- the site around it"
check "no token: 401" "401" "$(req "$url" -d 'return 1')"
check "http redirects to https" "301 https://127.0.0.1/api/v1/exec/interactive.lua" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1/api/v1/exec/interactive.lua)"
check "TLS 1.3 accepted" "200" "$(req --tlsv1.3 -H "Authorization: Bearer $token" "$url" -d 'return 1')"
check "TLS 1.1 refused" "000" "$(req --tlsv1.1 --tls-max 1.1 --ciphers 'DEFAULT@SECLEVEL=0' -H "Authorization: Bearer $token" "$url" -d 'return 1' || true)"
check "no nginx version in Server" "Server: nginx" "$(curl -skI https://127.0.0.1/ | tr -d '\r' | grep -i '^server:')"
check "the web console is served" "200" "$(req https://127.0.0.1/)"
check "with its policy" "default-src 'self'" "$(curl -skI https://127.0.0.1/ | tr -d '\r' | grep -i '^content-security-policy:' | grep -o "default-src 'self'")"
check "and Debian's CodeMirror" "200" "$(req https://127.0.0.1/vendor/codemirror/mode/lua/lua.js)"
check "the token is in no nginx log" "no" "$(grep -rq "$token" /var/log/nginx && echo yes || echo no)"
check "nor in luaexecd's log" "no" "$(grep -q "$token" /var/log/luaexecd.log && echo yes || echo no)"

echo "-- the audit trail (luaexec as root reads the key as luaexecd's user)"
# The writer commits every 250 ms.
i=0; while ! luaexec audit --kind exec --json | grep -q '"path":"/api/v1/exec/interactive.lua"' && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
done
check "the seed's requests are on record" "yes" \
    "$(luaexec audit --kind exec --json | grep -q '"path":"/api/v1/exec/interactive.lua"' && echo yes)"
check "the first admin token's making is on record" "yes" \
    "$(luaexec audit --kind cli --json | grep -q '"detail":"token create admin scopes=admin,exec' && echo yes)"
check "luaexec audit verify" "0" "$(luaexec audit verify >/dev/null; echo $?)"
check "GET /api/v1/admin/audit/verify" "200" "$(req -H "Authorization: Bearer $token" https://127.0.0.1/api/v1/admin/audit/verify)"

if [ $fail != 0 ]; then
    echo "-- luaexecd's log"; tail -20 /var/log/luaexecd.log
    echo "-- nginx's error log"; tail -5 /var/log/nginx/error.log
fi
nginx -s stop || true
# Only this test's luaexecd: the root shares the host's process table, where a `make run` may
# be serving.
kill "$daemon" 2>/dev/null || true
# The demo script is this test's, not the package's: purge would rightly leave it (and its
# directory) in place.
rm -f /etc/luaexec/init.d/20-sip-demo.lua
exit $fail
