#!/usr/bin/env bash
# `make test-package`: the proof of the Debian package (SPEC O6). Installs the .deb into a fresh
# Debian 12 root made by debootstrap from Debian's packages, then, inside it (chroot, own
# network namespace): checks what the maintainer scripts made, starts luaexecd and nginx from
# the installed files the way the units do, runs the seed's curl lines, and purges.
#
# Needs root and network access to deb.debian.org. The minimal root is cached in
# .build-package/ (debootstrap takes minutes); every run unpacks a fresh copy of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ "$(id -u)" = 0 ] || { echo "make test-package needs root (chroot, mounts, namespaces)" >&2; exit 1; }
"$root/scripts/install-deps.sh" debootstrap iproute2 util-linux

version=$(sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/ExecService/ExecService.swift)
deb="$root/luaexec_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || { echo "no $deb: run make deb" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache="$root/.build-package"
base="$cache/bookworm-minbase.tar"
mkdir -p "$cache"
if [ ! -f "$base" ]; then
    echo "== debootstrap bookworm (once; cached in $base)"
    rm -rf "$cache/bootstrap"
    debootstrap --variant=minbase bookworm "$cache/bootstrap" "$mirror" >"$cache/debootstrap.log"
    tar -C "$cache/bootstrap" -cf "$base" .
    rm -rf "$cache/bootstrap"
fi

target=$(mktemp -d /tmp/luaexec-package-root.XXXXXX)
cleanup() {
    for mount in dev/pts dev proc sys; do umount -l "$target/$mount" 2>/dev/null || true; done
    # LUAEXEC_KEEP_ROOT=1 keeps the root for a look after a failure.
    if [ -n "${LUAEXEC_KEEP_ROOT:-}" ]; then echo "kept $target"; else rm -rf "$target"; fi
}
trap cleanup EXIT
tar -C "$target" -xf "$base"
mount --bind /dev "$target/dev"
mount --bind /dev/pts "$target/dev/pts"
mount -t proc proc "$target/proc"
mount -t sysfs sys "$target/sys"
cp /etc/resolv.conf "$target/etc/resolv.conf"
# As in any image build: packages must not start services inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$target/usr/sbin/policy-rc.d"
chmod 0755 "$target/usr/sbin/policy-rc.d"
cp "$deb" "$target/tmp/luaexec.deb"
cp "$root/packaging/test-package-inside.sh" "$target/tmp/inside.sh"

in_root() { chroot "$target" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

echo "== apt-get install ./luaexec.deb (and what it depends on) into a fresh Debian 12 root"
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends /tmp/luaexec.deb >"$target/tmp/install.log" 2>&1 ||
    { cat "$target/tmp/install.log"; exit 1; }
grep -E "^luaexec:" "$target/tmp/install.log" || true
# For the test itself: curl, and systemd-socket-activate (the socket unit's stand-in: no PID 1).
in_root apt-get install -y -qq --no-install-recommends curl systemd procps >/dev/null 2>&1

echo "== inside, in its own network namespace"
unshare --net sh -c "ip link set lo up && chroot '$target' /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh /tmp/inside.sh"

fail=0
verdict() { # verdict DESCRIPTION CONDITION...
    local description=$1
    shift
    if "$@"; then echo "ok: $description"; else echo "FAIL: $description"; fail=1; fi
}

echo "== reinstall, as an upgrade does: what postinst made stays"
token_before=$(cat "$target/etc/luaexec/admin-token")
cert_before=$(md5sum < "$target/etc/luaexec/tls/cert.pem")
key_before=$(md5sum < "$target/etc/luaexec/audit.key")
in_root dpkg -i /tmp/luaexec.deb >/dev/null
verdict "the audit key is unchanged" [ "$(md5sum < "$target/etc/luaexec/audit.key")" = "$key_before" ]
verdict "the admin token file is unchanged" [ "$(cat "$target/etc/luaexec/admin-token")" = "$token_before" ]
verdict "the certificate is unchanged" [ "$(md5sum < "$target/etc/luaexec/tls/cert.pem")" = "$cert_before" ]
verdict "one token in the database" [ "$(in_root luaexec token list --json | grep -o '"name"' | wc -l)" = 1 ]

echo "== apt-get remove luaexec: the site goes, the state stays"
in_root apt-get remove -y -qq luaexec >/dev/null
verdict "the site is disabled" [ ! -e "$target/etc/nginx/sites-enabled/luaexec" ]
verdict "Debian's default site is back" \
    [ "$(readlink "$target/etc/nginx/sites-enabled/default")" = /etc/nginx/sites-available/default ]
verdict "the tokens stay" [ -f "$target/var/lib/luaexec/luaexec.db" ]
verdict "the config stays" [ -f "$target/etc/luaexec/luaexecd.conf" ]
verdict "the audit key stays" [ -f "$target/etc/luaexec/audit.key" ]

echo "== apt-get purge luaexec: everything goes"
in_root apt-get purge -y -qq luaexec >/dev/null
for path in /var/lib/luaexec /etc/luaexec /etc/nginx/sites-enabled/luaexec /etc/nginx/sites-available/luaexec \
    /usr/sbin/luaexecd /usr/bin/luaexec; do
    verdict "$path is gone" test ! -e "$target$path" -a ! -L "$target$path"
done
verdict "the user luaexec is gone" sh -c "! chroot '$target' getent passwd luaexec >/dev/null"
exit $fail
