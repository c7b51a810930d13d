#!/bin/bash
# Builds petabox-covers.tar.gz, the tar variant of the petabox source that
# ol-covers uses, from sources/petabox plus two entries of its own:
#
#   opt/openlibrary/.wh.maxmind-geoip   an OCI whiteout: removes the
#                                       maxmind-geoip directory that ol-base's
#                                       overlays/base put down
#   opt/openlibrary/maxmind-geoip       a symlink to petabox's GeoIP data
#                                       (/opt/petabox/sw/share/GeoIP)
#
# The archive is byte-for-byte reproducible: sorted names, numeric root
# owners, modes normalized away from the host's umask, one mtime (the
# fleet's epoch), pax headers without pid, atime or ctime, and gzip without
# a name or time stamp. Needs GNU tar and gzip. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

cp -R petabox/opt "$stage/opt"
mkdir -p "$stage/opt/openlibrary"
: >"$stage/opt/openlibrary/.wh.maxmind-geoip"
ln -s /opt/petabox/sw/share/GeoIP "$stage/opt/openlibrary/maxmind-geoip"

LC_ALL=C tar -C "$stage" \
	--sort=name \
	--owner=0 --group=0 --numeric-owner \
	--mode='u+rw,go+r,go-w,a+X' \
	--mtime=@1704067200 \
	--format=pax \
	--pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
	-cf - opt |
	gzip -9 -n >petabox-covers.tar.gz.tmp
mv petabox-covers.tar.gz.tmp petabox-covers.tar.gz
