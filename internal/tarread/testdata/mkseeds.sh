#!/bin/sh
# Writes the seed archives of FuzzReader with GNU tar: one tree in each of
# GNU tar's formats, and sparse files in two. Run from this directory.
set -eu
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
long=$(printf 'n%.0s' $(seq 90)) file=$(printf 'f%.0s' $(seq 60))
mkdir -p "$src/d/sub" "$src/d/$long" "$src/s"
echo hello >"$src/d/a"
printf 'x%.0s' $(seq 700) >"$src/d/b"
: >"$src/d/empty"
ln -s a "$src/d/s"
ln "$src/d/a" "$src/d/h"
echo z >"$src/d/$long/$file"
ln -s "$(printf 't%.0s' $(seq 130))" "$src/l"
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.test", b"val")' "$src/d/a"
printf 'data' | dd of="$src/s/sparse" bs=1 seek=600000 conv=notrunc 2>/dev/null
printf 'head' | dd of="$src/s/sparse" bs=1 conv=notrunc 2>/dev/null
truncate -s 1000000 "$src/s/sparse"
t() { tar -c -b1 --sort=name --mtime=@1000000000 --owner=root:0 --group=root:0 -C "$src" "$@"; }
t --format=gnu -f gnu.tar d/a d/b d/empty d/s d/h d/sub
t --format=gnu -f gnu-long.tar d l
t --format=oldgnu -f oldgnu.tar d/a d/s d/sub
t --format=ustar -f ustar.tar d
t --format=pax --xattrs -f pax.tar d l
t --format=v7 -f v7.tar d/a d/s d/h
t --format=gnu --sparse -f sparse-gnu.tar s
t --format=pax --sparse -f sparse-pax.tar s
