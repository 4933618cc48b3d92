#!/usr/bin/env bash
# Installs the Debian packages luaexec builds and runs with, if any is missing.
#   install-deps.sh [PACKAGE...]   also the named ones (make deb: dpkg-dev lintian; make
#                                  test-package: debootstrap)
set -euo pipefail
packages=(nginx lighttpd lighttpd-mod-openssl apache2 libjs-codemirror libfcgi-dev liblua5.4-dev libsqlite3-dev libyaml-dev libcurl4-openssl-dev libssl-dev libedit-dev pkg-config openssl curl ca-certificates spawn-fcgi systemd perl sqlite3 lua5.4 "$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged nginx on port 80 where systemd runs; luaexec runs its own.
# lighttpd and apache2 are installed for the tests and `LUAEXEC_SERVER=... make run`, which run
# their own in the foreground: where systemd runs, the packaged services just installed would
# hold port 80 beside nginx, so they are stopped and kept from starting at boot.
if [ -d /run/systemd/system ]; then
    for service in lighttpd apache2; do
        if [[ " ${missing[*]} " == *" $service "* ]]; then
            $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
        fi
    done
fi
