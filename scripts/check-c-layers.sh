#!/usr/bin/env bash
# Checks that Sources/CLuaSupport keeps its layers (docs/architecture.md, "CLuaSupport's layers"):
# a file includes only headers of its own layer and of layers below it, and no file below the
# modules touches the runtime fields that belong to persist.c, http.c and log.c (those after
# "Above evaluation" in stop.h's struct lx_runtime). Run by `make test`; takes milliseconds.
set -euo pipefail

dir="$(cd "$(dirname "$0")/.." && pwd)/Sources/CLuaSupport"

# file -> "layer rank". persist, http and log share a rank: side by side, none includes another.
declare -A layer=(
    [CLuaSupport.h]="public 0"
    [slices.h]="slices 0"
    [codec.h]="codec 1" [codec.c]="codec 1"
    [check.c]="check 1"
    [stop.h]="stop 2" [stop.c]="stop 2"
    [baselib.h]="baselib 3" [baselib.c]="baselib 3" [patterns.c]="baselib 3" [tablelib.c]="baselib 3"
    [eval.h]="eval 4" [eval.c]="eval 4"
    [persist.h]="persist 5" [persist.c]="persist 5"
    [http.h]="http 5" [http.c]="http 5"
    [log.h]="log 5" [log.c]="log 5"
    [timer.h]="timer 5" [timer.c]="timer 5"
    [inspect.h]="inspect 5" [inspect.c]="inspect 5"
    [state.c]="state 6"
)

failed=0
fail() {
    echo "check-c-layers: $*" >&2
    failed=1
}

shopt -s nullglob
files=("$dir"/*.c "$dir"/*.h)
[ ${#files[@]} -gt 0 ] || { echo "check-c-layers: no C files in $dir" >&2; exit 1; }

for path in "${files[@]}"; do
    file="${path##*/}"
    if [ -z "${layer[$file]:-}" ]; then
        fail "$file is in no layer: add it to scripts/check-c-layers.sh and docs/architecture.md"
        continue
    fi
    read -r own rank <<<"${layer[$file]}"
    while IFS= read -r header; do
        if [ -z "${layer[$header]:-}" ]; then
            fail "$file includes \"$header\", which is in no layer"
            continue
        fi
        read -r their their_rank <<<"${layer[$header]}"
        if [ "$their" != "$own" ] && [ "$their_rank" -ge "$rank" ]; then
            fail "$file ($own) includes \"$header\" ($their): a layer includes only headers of layers below it"
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$path")
done

# The fields of the layers above evaluation: the declarations after "Above evaluation" in the
# struct, comments dropped, the type (first word) dropped, the declarators split at commas.
fields=$(awk '/struct lx_runtime \{/ { inside = 1 } inside && /Above evaluation/ { above = 1; next }
    inside && /^\};/ { exit } above { sub(/\/\/.*/, ""); if ($0 ~ /;/) print }' "$dir/stop.h" |
    sed -e 's/;.*//' -e 's/^[[:space:]]*[A-Za-z_][A-Za-z_0-9]*[[:space:]]*//' | tr ',' '\n' | tr -d ' *' | grep . || true)
[ -n "$fields" ] || fail "found no fields after \"Above evaluation\" in stop.h's struct lx_runtime"
pattern="->($(echo "$fields" | paste -sd '|'))\\b"
for path in "${files[@]}"; do
    file="${path##*/}"
    read -r _ rank <<<"${layer[$file]:-none 9}"
    [ "$rank" -le 4 ] || continue
    if grep -nE -- "$pattern" "$path" >/dev/null; then
        fail "$file (below the modules) touches a field of persist.c, http.c or log.c: $(grep -nE -- "$pattern" "$path" | head -1)"
    fi
done

[ "$failed" = 0 ] && echo "check-c-layers: the layers hold ($(( ${#files[@]} )) files)"
exit "$failed"
