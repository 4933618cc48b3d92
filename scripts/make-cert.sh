#!/usr/bin/env bash
# A self-signed certificate for 127.0.0.1 and localhost, unless one is there already.
#   make-cert.sh CERT KEY
set -euo pipefail
cert=$1 key=$2
[ -s "$cert" ] && [ -s "$key" ] && exit 0
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=luaexec" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout "$key" -out "$cert" 2>/dev/null
