#!/bin/bash
# Monthly data dump: exports the things table and uploads it as
# ol_dump_YYYY-MM-DD to archive.org.  Usage: oldump.sh YYYY-MM-DD [--archive]
set -euo pipefail

date=${1:?usage: oldump.sh YYYY-MM-DD [--archive]}
dir=/var/lib/openlibrary/dumps/ol_dump_$date
mkdir -p "$dir"
psql -h ol-db1 -U openlibrary -d openlibrary \
	-c "\\copy (select * from data) to stdout" | gzip -c >"$dir/data_$date.txt.gz"
if [ "${2:-}" = --archive ]; then
	ia upload "ol_dump_$date" "$dir"/* --metadata="collection:ol_exports"
fi
