#!/bin/bash
# Writes the placeholder GeoIP.dat files of the example fleet. They stand in
# for MaxMind's GeoLite country database, which may not be redistributed
# here: an ASCII banner, the 256 byte values in order, and the three 0xff
# bytes plus edition byte (1, country) that end a legacy GeoIP database.
# The output is the same on every host; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

placeholder() {
	printf 'OLIMAGE PLACEHOLDER - not a MaxMind GeoIP database\n'
	local i
	for i in $(seq 0 255); do
		printf "\\$(printf '%03o' "$i")"
	done
	printf '\377\377\377\001'
}

for f in overlays/base/opt/openlibrary/maxmind-geoip/GeoIP.dat \
	sources/petabox/opt/petabox/sw/share/GeoIP/GeoIP.dat; do
	mkdir -p "$(dirname "$f")"
	placeholder >"$f"
	chmod 0644 "$f"
done
