#!/usr/bin/env bash
# make bench: measures olimage against its peers on generated trees, in the
# same run, and prints times, ratios and peak memory. No test asserts on
# these numbers; the issue notes quote them.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_WORK:-bench/work}
bin=bin/olimage
mkdir -p "$work"
go build -o "$work/gentree" ./bench/gentree

# measure NAME CMD...: runs CMD once, records wall seconds and peak RSS (MB).
declare -A secs rss
measure() {
	local name=$1; shift
	local out
	/usr/bin/time -o "$work/time.out" -f '%e %M' "$@" >/dev/null 2>"$work/stderr.out" || {
		echo "bench: $name failed:"; cat "$work/stderr.out"; exit 1; }
	out=$(tail -1 "$work/time.out")
	secs[$name]=${out% *}
	rss[$name]=$(( ${out#* } / 1024 ))
	printf '  %-28s %7.2f s  %5d MB\n' "$name" "${secs[$name]}" "${rss[$name]}"
}
ratio() { awk -v a="${secs[$1]}" -v b="${secs[$2]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

fleet() { # fleet DIR TREE: a one-role fleet whose single overlay is TREE
	mkdir -p "$1/roles"
	printf 'fleet: bench\nepoch: 2024-01-01T00:00:00Z\n' > "$1/olimage.yaml"
	printf 'overlays:\n  - {name: tree, dir: %s}\n' "$(realpath "$2")" > "$1/roles/bench.yaml"
}

echo "== merge: 100k entries (90k files of 0-2 KiB in 10k directories)"
if [ ! -d "$work/merge100k" ]; then "$work/gentree" -kind merge100k "$work/merge100k"; fi
fleet "$work/fleet-merge100k" "$work/merge100k"
# Warm the page cache so every tool reads from memory.
tar -cf - -C "$work/merge100k" . >/dev/null
measure "olimage validate (merge)" "$bin" -f "$work/fleet-merge100k" validate
measure "olimage plan --json" "$bin" -f "$work/fleet-merge100k" plan --json bench
# GNU tar skips reading files when writing to /dev/null itself; pipe it.
measure "tar -cf - | cat" sh -c "tar -cf - -C '$work/merge100k' . | cat"
measure "sha256sum (find | xargs)" sh -c "cd '$work/merge100k' && find . -type f -print0 | xargs -0 -n 2000 sha256sum"
echo "  ratios: merge/tar $(ratio 'olimage validate (merge)' 'tar -cf - | cat')  merge/sha256sum $(ratio 'olimage validate (merge)' 'sha256sum (find | xargs)')  plan --json/tar $(ratio 'olimage plan --json' 'tar -cf - | cat')"
