#!/usr/bin/env bash
# `make deb`: builds luaexec_<version>_<arch>.deb in the repository root (SPEC O6), for the
# architecture of the machine it runs on (`dpkg --print-architecture`: amd64, arm64): the build
# is native, since dpkg-shlibdeps reads the libraries the executable links (docs/packaging.md).
#
# One executable: luaexecd, linked with the Swift runtime statically (the appliance has no
# Swift toolchain); /usr/bin/luaexec is a link to it. Lua, SQLite and libyaml come from
# Debian, so their security updates reach the appliance without a new luaexec. (FastCGI is
# luaexecd's own: only libfcgi-dev's fastcgi.h is used to build it, nothing is linked. The
# client's libcurl, libcrypto and libedit are opened with dlopen, named in Depends below.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh" dpkg-dev lintian

version=$(sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/ExecService/ExecService.swift)
[ -n "$version" ] || { echo "cannot read the version from ExecService.swift" >&2; exit 1; }
arch=$(dpkg --print-architecture)
deb="$root/luaexec_${version}_${arch}.deb"

# The release build with its linker settings (hardening, footprint): scripts/build-release.sh.
scripts/build-release.sh --product luaexecd
bin=$(scripts/build-release.sh --show-bin-path)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/luaexec"
doc="$stage/usr/share/doc/luaexec"
install -d "$stage/DEBIAN" "$stage/usr/sbin" "$stage/usr/bin" "$stage/lib/systemd/system" \
    "$stage/etc/luaexec/init.d" "$stage/etc/nginx/sites-available" "$stage/etc/nginx/snippets" "$doc/examples"

install -m 0755 "$bin/luaexecd" "$stage/usr/sbin/luaexecd"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/sbin/luaexecd"
ln -s ../sbin/luaexecd "$stage/usr/bin/luaexec"

install -m 0644 systemd/luaexecd.service systemd/luaexecd.socket "$stage/lib/systemd/system/"
install -m 0644 packaging/luaexecd.conf "$stage/etc/luaexec/luaexecd.conf"
install -m 0644 init.d/10-system.lua "$stage/etc/luaexec/init.d/10-system.lua"
install -m 0644 init.d/20-sip-demo.lua "$doc/examples/20-sip-demo.lua"
install -m 0644 init.d/30-example.lua "$doc/examples/30-example.lua"

# The site as shipped, with the installed paths filled in.
LUAEXEC_LOG_DIR=/var/log/nginx LUAEXEC_SNIPPETS_DIR=/etc/nginx/snippets LUAEXEC_WEB_DIR=/usr/share/luaexec/web \
    scripts/render-nginx.sh "$work/site" /run/luaexec/luaexecd.sock 443 80 "" \
    /etc/luaexec/tls/cert.pem /etc/luaexec/tls/key.pem 50r/s 100
install -m 0644 "$work/site/luaexec-site.conf" "$stage/etc/nginx/sites-available/luaexec"
install -m 0644 nginx/luaexec-fastcgi.conf nginx/luaexec-headers.conf nginx/luaexec-api-headers.conf \
    "$stage/etc/nginx/snippets/"
# The lighttpd and Apache httpd sites, rendered with the installed paths, as examples: nginx stays
# the server the package depends on and configures (docs/servers.md says how to use these).
LUAEXEC_LOG_DIR=/var/log/lighttpd LUAEXEC_WEB_DIR=/usr/share/luaexec/web LUAEXEC_MASK_SED=/usr/share/luaexec/mask-tokens.sed \
    scripts/render-lighttpd.sh "$work/lighttpd" /run/luaexec/luaexecd.sock :443 80 "" \
    /etc/luaexec/tls/cert.pem /etc/luaexec/tls/key.pem
install -m 0644 "$work/lighttpd/luaexec-lighttpd.conf" "$doc/examples/lighttpd-luaexec.conf"
LUAEXEC_LOG_DIR=/var/log/apache2 LUAEXEC_WEB_DIR=/usr/share/luaexec/web LUAEXEC_MASK_SED=/usr/share/luaexec/mask-tokens.sed \
    scripts/render-apache.sh "$work/apache" /run/luaexec/luaexecd.sock "*:443" 80 "" \
    /etc/luaexec/tls/cert.pem /etc/luaexec/tls/key.pem
install -m 0644 "$work/apache/luaexec-apache.conf" "$doc/examples/apache-luaexec.conf"
# Both pipe their logs through it (SPEC T5: no token in any log).
install -D -m 0644 packaging/mask-tokens.sed "$stage/usr/share/luaexec/mask-tokens.sed"

# The web console (SPEC O7): static files as in the repository; the editor is libjs-codemirror.
for file in $(cd web && find . -type f | sort); do
    install -D -m 0644 "web/$file" "$stage/usr/share/luaexec/web/$file"
done

install -m 0644 packaging/debian/copyright "$doc/copyright"
gzip -9n < packaging/debian/changelog > "$doc/changelog.gz"  # a native package: no .Debian
install -D -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/luaexec"
for file in README.md docs/*.md; do gzip -9n < "$file" > "$doc/$(basename "$file").gz"; done
chmod 0644 "$doc"/*.gz

# Manual pages from the commands' own help (swift-argument-parser's generate-manual plugin,
# which documents every executable of the package in one section per run).
manual() { # manual SECTION
    mkdir -p "$work/man$1"
    swift package --allow-writing-to-directory "$work/man$1" generate-manual \
        --output-directory "$work/man$1" --authors "luaexec developers" --section "$1" >"$work/man.log" 2>&1 ||
        { tail -5 "$work/man.log" >&2; exit 1; }
}
manual 1
manual 8
install -d "$stage/usr/share/man/man1" "$stage/usr/share/man/man8"
for page in "$work"/man1/luaexec.1 "$work"/man8/luaexecd.8; do
    section=${page##*.}
    gzip -9n < "$page" > "$stage/usr/share/man/man$section/$(basename "$page").gz"
done
chmod 0644 "$stage"/usr/share/man/man*/*.gz

install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"

# Depends: what the binary links, from dpkg-shlibdeps, with the minimum versions that carry
# the security fixes named in the README (Lua CVE-2022-28805 and CVE-2022-33099).
mkdir -p "$work/shlibs/debian"
printf 'Source: luaexec\n\nPackage: luaexec\nArchitecture: %s\n' "$arch" > "$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$stage/usr/sbin/luaexecd" | sed -n 's/^shlibs:Depends=//p')
shlibs=$(printf '%s' "$shlibs" | sed -E \
    -e 's/liblua5\.4-0( \([^)]*\))?/liblua5.4-0 (>= 5.4.4-3)/')
# The client's libraries are opened with dlopen when `luaexec` needs them, not linked
# (Sources/CRemote/libraries.c), so dpkg-shlibdeps cannot see them: named here by the packages
# that carry the sonames it opens (libcurl.so.4, libcrypto.so.3, libedit.so.2), with the
# versions their shlibs files give.
shlibs="$shlibs, libcurl4 (>= 7.88.1), libssl3 (>= 3.0.0), libedit2 (>= 3.1-20180525-1)"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@SHLIBS@|$shlibs|" \
    packaging/debian/control.in > "$stage/DEBIAN/control"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "built $deb: $(du -h "$deb" | cut -f1) (installed: ${installed_size} KiB)"
dpkg-deb --field "$deb" Depends
echo "lintian (overrides, each explained: packaging/debian/lintian-overrides):"
lintian --tag-display-limit 0 -I --pedantic "$deb" 2>&1 | grep -v "running with root privileges" || true
