# Sourced by scripts that run luaexecd (or another daemon) in the background under valgrind:
# $work, a scratch directory removed at exit, after the daemon whose pid is in $daemon stops.
work=$(mktemp -d)
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
