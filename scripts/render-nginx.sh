#!/usr/bin/env bash
# Fills nginx/dev-nginx.conf.in and nginx/luaexec-site.conf.in into a run directory.
# Used by `make run` and by the integration tests, so both run the site as shipped.
#   render-nginx.sh RUN_DIR SOCKET HTTPS_LISTEN HTTP_LISTEN HTTPS_PORT_SUFFIX CERT KEY [RATE BURST]
# RATE and BURST: the per-address request limit on /api/ (default 50r/s, burst 100).
# LUAEXEC_API_CONNECTIONS: how many requests of one address /api/ serves at once (default 64).
# The Debian package renders the same site with its own paths: LUAEXEC_LOG_DIR and
# LUAEXEC_SNIPPETS_DIR override where the site's logs and snippets live, LUAEXEC_WEB_DIR where
# the web console's files are (default: the repository's web/) and LUAEXEC_CODEMIRROR_DIR
# Debian's CodeMirror (libjs-codemirror).
set -euo pipefail
if [ $# -ne 7 ] && [ $# -ne 9 ]; then
    echo "usage: $0 RUN_DIR SOCKET HTTPS_LISTEN HTTP_LISTEN HTTPS_PORT_SUFFIX CERT KEY [RATE BURST]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
run_dir=$1 socket=$2 https_listen=$3 http_listen=$4 suffix=$5 cert=$6 key=$7
rate=${8:-50r/s} burst=${9:-100} connections=${LUAEXEC_API_CONNECTIONS:-64}
log_dir=${LUAEXEC_LOG_DIR:-$run_dir/logs} snippets_dir=${LUAEXEC_SNIPPETS_DIR:-$run_dir}
web_dir=${LUAEXEC_WEB_DIR:-$here/web} codemirror_dir=${LUAEXEC_CODEMIRROR_DIR:-/usr/share/javascript/codemirror}
mkdir -p "$run_dir/logs" "$run_dir/tmp"
# nginx ignores `user` unless started as root; as root, workers keep root's identity so they
# can reach the run directory and the socket.
user_directive=""
[ "$(id -u)" = 0 ] && user_directive="user root root;"
fill() {
    sed -e "s|@RUN_DIR@|$run_dir|g" -e "s|@LOG_DIR@|$log_dir|g" -e "s|@SOCKET@|$socket|g" \
        -e "s|@HTTPS_LISTEN@|$https_listen|g" -e "s|@HTTP_LISTEN@|$http_listen|g" \
        -e "s|@HTTPS_PORT_SUFFIX@|$suffix|g" -e "s|@TLS_CERT@|$cert|g" -e "s|@TLS_KEY@|$key|g" \
        -e "s|@USER_DIRECTIVE@|$user_directive|g" -e "s|@SNIPPETS_DIR@|$snippets_dir|g" \
        -e "s|@RATE@|$rate|g" -e "s|@BURST@|$burst|g" -e "s|@CONNECTIONS@|$connections|g" -e "s|@WEB_DIR@|$web_dir|g" \
        -e "s|@CODEMIRROR_DIR@|$codemirror_dir|g" "$1"
}
cp "$here/nginx/luaexec-fastcgi.conf" "$here/nginx/luaexec-headers.conf" "$here/nginx/luaexec-api-headers.conf" \
    "$run_dir/"
fill "$here/nginx/luaexec-site.conf.in" > "$run_dir/luaexec-site.conf"
fill "$here/nginx/dev-nginx.conf.in" > "$run_dir/nginx.conf"
