#!/usr/bin/env bash
# Builds the test targets (`make test` runs it before `swift test`) and fails on an expectation
# that cannot fail. swift-testing expands `#expect((x?["k"] as? String ?? "").hasSuffix("y"))`
# to an optional call whose Bool it drops: the expectation passes whatever the value (a probe
# with a wrong suffix passed; TimerTests.failures had one). The compiler's only sign is a
# warning inside the macro's expansion, "result of call to 'hasSuffix' is unused"; this turns
# that warning into a failure naming the line. A file's
# warnings show when it is compiled: always in a clean clone (CI), after a change otherwise.
# The fix: bind the value first (`let message = x?["k"] as? String ?? ""`), then expect on it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
swift=${SWIFT:-swift}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
(cd "$root" && "$swift" build --build-tests) >"$log" 2>&1 || status=$?
cat "$log"
[ "$status" = 0 ] || exit "$status"
# "macro expansion #expect:2:7: warning: result of call to 'hasSuffix' is unused", then the
# line that says where the expanded code comes from.
found=$(awk '
    /^macro expansion #(expect|require):.*warning: result of call to .* is unused/ { want = 1; next }
    want && /expanded code originates here/ { sub(/^.*- /, ""); sub(/: note:.*/, ""); print; want = 0 }
' "$log" | sort -u)
if [ -n "$found" ]; then
    echo "build-tests.sh: an expectation that cannot fail (its call's result is dropped; bind the value first):" >&2
    echo "$found" | sed 's/^/  /' >&2
    exit 1
fi
