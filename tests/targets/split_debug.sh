#!/bin/sh
# split_debug.sh: turns a freshly linked target into the "stripped binary with
# separate debug info" variant the tests need.  The DWARF goes to
# DEBUG_DIR/.build-id/xx/yyyy.debug (xx = first byte of the GNU build-id in
# hex, yyyy = the rest), the binary loses its debug info and .symtab (keeping
# .dynsym) and gains a .gnu_debuglink.  Run by CMake as a POST_BUILD step, so
# it always sees a fresh, unstripped link output.
#
# Usage: split_debug.sh BINARY DEBUG_DIR [OBJCOPY] [STRIP] [READELF]
set -eu
bin=$1
dir=$2
objcopy=${3:-objcopy}
strip=${4:-strip}
readelf=${5:-readelf}

id=$("$readelf" -n "$bin" | awk '/Build ID:/ { print $3; exit }')
if [ -z "$id" ]; then
  echo "split_debug.sh: $bin has no GNU build-id (link with -Wl,--build-id)" >&2
  exit 1
fi
prefix=$(printf '%s' "$id" | cut -c1-2)
rest=$(printf '%s' "$id" | cut -c3-)
mkdir -p "$dir/.build-id/$prefix"
debug="$dir/.build-id/$prefix/$rest.debug"
"$objcopy" --only-keep-debug "$bin" "$debug"
chmod 0644 "$debug"
"$strip" --strip-debug --strip-unneeded "$bin"
"$objcopy" --add-gnu-debuglink="$debug" "$bin"
