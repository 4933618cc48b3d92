#!/usr/bin/env bash
# The release build, as `make deb` packages it and `make bench` measures it:
#   build-release.sh [swift build arguments...]     e.g. --product luaexecd, --show-bin-path
#
# The Swift runtime is linked statically (the appliance has no Swift toolchain). The rest is
# for luaexecd's idle footprint (SPEC P2: at most 10 MB resident), each measured in
# docs/packaging.md:
# - lld with packed relative relocations (RELR): a position-independent executable whose
#   1.1 MB relocation table shrinks to 9 KB, so the dynamic loader no longer pages it in;
# - no exported symbol table (the Swift driver exports every symbol for backtraces, which read
#   the symbol table from the file anyway): about 600 KB less for the loader to page in;
# - libstdc++ linked statically (the Swift runtime uses a few of its functions; the shared one
#   costs 1 MB resident);
# - every function in a section of its own (Swift and C), placed by packaging/luaexecd.order,
#   the functions start-up and a first request run (scripts/make-order-file.sh writes it), so
#   that what the daemon runs lies together and the kernel's 64 KiB fault-around maps little else;
# - full RELRO (bind now) and fortified C, as Debian's hardening flags ask.
# And one for speed: no run-time exclusivity checks. The transport's per-connection state lives
# in class instances, and checking each access to it cost ~35 calls, 4% of luaexecd's
# instructions per request (bench/NOTES.md). The compile-time checks stay, and the debug build,
# which every test runs, keeps the run-time ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch="$root/.build-static"

# A directory with only the static libstdc++, searched first, so that -lstdc++ finds it.
static_cxx="$scratch/static-libstdc++"
mkdir -p "$static_cxx"
archive=$(clang -print-file-name=libstdc++.a)  # the Swift toolchain's clang; libstdc++-12-dev's file
[ -f "$archive" ] || { echo "build-release: no libstdc++.a (install libstdc++-12-dev)" >&2; exit 1; }
ln -sf "$archive" "$static_cxx/libstdc++.a"

flags=(-c release --static-swift-stdlib --scratch-path "$scratch"
    -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections
    -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic
    -Xlinker "-L$static_cxx"
    -Xlinker "--symbol-ordering-file=$root/packaging/luaexecd.order" -Xlinker --no-warn-symbol-ordering
    -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now -Xcc -D_FORTIFY_SOURCE=2
    -Xswiftc -enforce-exclusivity=unchecked)
# SwiftPM does not know the order file is an input of the link: relink when it changed.
for executable in "$scratch/$(uname -m)-unknown-linux-gnu/release"/{luaexecd,luaexec}; do
    if [ "$executable" -ot "$root/packaging/luaexecd.order" ]; then rm -f "$executable"; fi
done
cd "$root"
exec swift build "${flags[@]}" "$@"
