#!/usr/bin/env bash
# Fills lighttpd/dev-lighttpd.conf.in and lighttpd/luaexec-site.conf.in into a run directory, as
# render-nginx.sh does for nginx. Used by `LUAEXEC_SERVER=lighttpd make run` and the tests.
#   render-lighttpd.sh RUN_DIR SOCKET HTTPS_LISTEN HTTP_PORT HTTPS_PORT_SUFFIX CERT KEY
# HTTPS_LISTEN: lighttpd's socket spec ("127.0.0.1:8443", or ":443" on a box). The same
# LUAEXEC_LOG_DIR, LUAEXEC_WEB_DIR and LUAEXEC_CODEMIRROR_DIR overrides as render-nginx.sh.
# Writes RUN_DIR/lighttpd.conf (the whole server) and RUN_DIR/luaexec-lighttpd.conf (the site).
set -euo pipefail
if [ $# -ne 7 ]; then
    echo "usage: $0 RUN_DIR SOCKET HTTPS_LISTEN HTTP_PORT HTTPS_PORT_SUFFIX CERT KEY" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
run_dir=$1 socket=$2 https_listen=$3 http_port=$4 suffix=$5 cert=$6 key=$7
log_dir=${LUAEXEC_LOG_DIR:-$run_dir/logs}
web_dir=${LUAEXEC_WEB_DIR:-$here/web} codemirror_dir=${LUAEXEC_CODEMIRROR_DIR:-/usr/share/javascript/codemirror}
# The filter the logs go through (SPEC T5); installed as /usr/share/luaexec/mask-tokens.sed.
mask_sed=${LUAEXEC_MASK_SED:-$here/packaging/mask-tokens.sed}
mkdir -p "$run_dir/logs" "$run_dir/tmp"
fill() {
    sed -e "s|@RUN_DIR@|$run_dir|g" -e "s|@LOG_DIR@|$log_dir|g" -e "s|@SOCKET@|$socket|g" \
        -e "s|@HTTPS_LISTEN@|$https_listen|g" -e "s|@HTTP_PORT@|$http_port|g" \
        -e "s|@HTTPS_PORT_SUFFIX@|$suffix|g" -e "s|@TLS_CERT@|$cert|g" -e "s|@TLS_KEY@|$key|g" \
        -e "s|@WEB_DIR@|$web_dir|g" -e "s|@CODEMIRROR_DIR@|$codemirror_dir|g" -e "s|@MASK_SED@|$mask_sed|g" "$1"
}
fill "$here/lighttpd/luaexec-site.conf.in" > "$run_dir/luaexec-lighttpd.conf"
fill "$here/lighttpd/dev-lighttpd.conf.in" > "$run_dir/lighttpd.conf"
