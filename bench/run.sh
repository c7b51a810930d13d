#!/usr/bin/env bash
# make bench: measures olimage against its peers on generated trees, in the
# same run, and prints times, ratios and peak memory. No test asserts on
# these numbers; the issue notes quote them. See bench/README.md.
#
#   BENCH_ONLY=merge|build|size|registry|diff|million|fleet   run one part (default: all)
#   BENCH_TREES="source big" the build trees to run (default: source small60k big)
#   BENCH_RUNS=N             runs per measurement; the fastest counts (default 3)
#   BENCH_WORK=DIR           cached trees and temporaries (default bench/work)
#   BENCH_BIN=PATH           the olimage binary to measure (default bin/olimage), e.g. one
#                            built from an older commit, to compare two in the same conditions
set -euo pipefail
# A relative BENCH_BIN names a file from where the script was started.
if [ -n "${BENCH_BIN:-}" ]; then
	[ -f "$BENCH_BIN" ] && [ -x "$BENCH_BIN" ] || { echo "bench: BENCH_BIN=$BENCH_BIN: not an executable file" >&2; exit 2; }
	BENCH_BIN=$(realpath "$BENCH_BIN")
fi
cd "$(dirname "$0")/.."
work=${BENCH_WORK:-bench/work}
bin=${BENCH_BIN:-bin/olimage}
only=${BENCH_ONLY:-all}
trees=${BENCH_TREES:-source small60k big}
runs=${BENCH_RUNS:-3}
case $only in all | merge | build | size | registry | diff | million | fleet) ;; *) echo "bench: BENCH_ONLY=$only: want merge, build, size, registry, diff, million or fleet" >&2; exit 2 ;; esac
case $runs in '' | *[!0-9]* | 0) echo "bench: BENCH_RUNS=$runs: want a count of 1 or more" >&2; exit 2 ;; esac
for t in $trees; do
	case $t in source | small60k | big) ;; *) echo "bench: BENCH_TREES: unknown tree $t (want source, small60k, big)" >&2; exit 2 ;; esac
done
[ -x "$bin" ] || { echo "bench: $bin is missing; run make bench (it builds it)" >&2; exit 2; }
for tool in /usr/bin/time mkfs.ext4 e2fsck dumpe2fs tar; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (e2fsprogs, GNU time, GNU tar)" >&2; exit 2; }
done
mkdir -p "$work"
go build -o "$work/gentree" ./bench/gentree

# measure NAME CMD...: runs CMD $runs times, each after $prep (a shell
# snippet, outside the timing) and a sync (so earlier writes are not
# flushed on CMD's time), and records the fastest run's wall and CPU
# (user + system) seconds and the largest peak RSS (MB).
declare -A secs cpu rss
prep=
measure() {
	local name=$1; shift
	local s u k c m best= bcpu= peak=0 i all=
	for ((i = 0; i < runs; i++)); do
		if [ -n "$prep" ]; then eval "$prep"; fi
		sync
		local t0 t1
		t0=$(date +%s%N)
		/usr/bin/time -o "$work/time.out" -f '%e %U %S %M' "$@" >/dev/null 2>"$work/stderr.out" || {
			echo "bench: $name failed:"; cat "$work/stderr.out"; exit 1; }
		t1=$(date +%s%N)
		read -r s u k m < <(tail -1 "$work/time.out")
		# GNU time's wall clock has 10 ms steps; take it to the millisecond.
		s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
		c=$(awk -v u="$u" -v k="$k" 'BEGIN { printf "%.2f", u + k }')
		m=$((m / 1024)) all+=" $s"
		if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$s bcpu=$c; fi
		if ((m > peak)); then peak=$m; fi
	done
	secs[$name]=$best cpu[$name]=$bcpu rss[$name]=$peak
	printf '  %-30s %7.3f s  %5d MB  cpu %5.2f s' "$name" "$best" "$peak" "$bcpu"
	if ((runs > 1)); then printf '   (runs:%s)' "$all"; fi
	echo
}
ratio() { awk -v a="${secs[$1]}" -v b="${secs[$2]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# fleet DIR TREE: a one-role fleet whose single overlay is TREE.
journal=true
fleet() {
	mkdir -p "$1/roles"
	printf 'fleet: bench\nepoch: 2024-01-01T00:00:00Z\nsources: {allow_outside: ["%s"]}\n' "$(realpath "$2")" > "$1/olimage.yaml"
	printf 'image: {journal: %s}\noverlays:\n  - {name: tree, dir: %s}\n' "$journal" "$(realpath "$2")" > "$1/roles/bench.yaml"
}

# tree KIND: makes sure $work/KIND holds gentree's tree of that kind. Trees
# are cached; one written by another gentree (the stamp beside it differs)
# or left half-written by an interrupted run is written again.
tree() {
	local kind=$1 dir=$work/$1 stamp
	stamp="$kind $(sha256sum bench/gentree/main.go | cut -c1-64)"
	if [ -d "$dir" ] && [ "$(cat "$work/.$kind.stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
	echo "  (writing the $kind tree into $dir)"
	rm -rf "$dir" "$dir.tmp" "$work/.$kind.stamp"
	"$work/gentree" -kind "$kind" "$dir.tmp"
	mv "$dir.tmp" "$dir"
	echo "$stamp" > "$work/.$kind.stamp"
}

# busy: how loaded the machine is; other work on it skews every number.
busy() {
	printf 'load average %s' "$(cut -d' ' -f1-3 /proc/loadavg)"
	local r
	for r in cpu io; do
		if [ -r /proc/pressure/$r ]; then
			awk -v r=$r '/^some/ { sub("avg10=", "", $2); printf ", %s pressure %s%%", r, $2 }' /proc/pressure/$r
		fi
	done
}

# warm TREE: reads every file so every tool reads from memory. GNU tar
# skips reading files when writing to /dev/null itself; pipe it.
warm() { tar -cf - -C "$1" . | cat >/dev/null; }

# describe TREE: entry counts and content size, for the section header.
describe() {
	find "$1" -mindepth 1 -printf '%y %s\n' | awk '
		$1 == "f" { f++; b += $2 } $1 == "d" { d++ } $1 == "l" { l++ }
		END { printf "%d files, %d dirs, %d symlinks, %.1f MB of content", f, d, l, b / 1e6 }'
}

want() { [ "$only" = all ] || [ "$only" = "$1" ]; }

if want merge; then
	echo "== merge: 100k entries (90k files of 0-2 KiB in 10k directories); best of $runs run(s); $(busy)"
	tree merge100k
	fleet "$work/fleet-merge100k" "$work/merge100k"
	warm "$work/merge100k"
	measure "olimage validate (merge)" "$bin" -f "$work/fleet-merge100k" validate
	measure "olimage plan --json" "$bin" -f "$work/fleet-merge100k" plan --json bench
	measure "tar -cf - | cat" sh -c "tar -cf - -C '$work/merge100k' . | cat"
	measure "sha256sum (find | xargs)" sh -c "cd '$work/merge100k' && find . -type f -print0 | xargs -0 -n 2000 sha256sum"
	echo "  ratios: merge/tar $(ratio 'olimage validate (merge)' 'tar -cf - | cat')  merge/sha256sum $(ratio 'olimage validate (merge)' 'sha256sum (find | xargs)')  plan --json/tar $(ratio 'olimage plan --json' 'tar -cf - | cat')"
fi

if want build; then

declare -A what=(
	[source]="source-like tree"
	[small60k]="60k small files"
	[big]="five 256 MiB files"
)
if [ "$journal" = true ]; then jopt=(-j); else jopt=(-O ^has_journal); fi
img=$work/x.img mkimg=$work/mkfs.img tarball=$work/x.tar
cleanup() { rm -f "$img" "$img.manifest.json" "$work"/.x.img.* "$mkimg" "$tarball"; }
trap cleanup EXIT
built=()
for t in $trees; do
	echo "== build: $t, ${what[$t]}; best of $runs run(s); $(busy)"
	tree "$t"
	src=$work/$t
	echo "  tree: $(describe "$src")"
	fleet "$work/fleet-$t" "$src"
	warm "$src"

	# (1) olimage build: raw, sparse, with its sidecar manifest.
	prep='rm -f "$img" "$img.manifest.json"'
	measure "olimage build ($t)" "$bin" -f "$work/fleet-$t" build bench -o "$img"
	size=$(stat -c %s "$img")
	if command -v jq >/dev/null; then
		side=$(jq -r .image.size "$img.manifest.json")
		[ "$side" = "$size" ] || { echo "bench: $t: sidecar says the image is $side bytes, the file is $size"; exit 1; }
	fi
	# Checked once, outside the timing: a wrong image is no benchmark.
	if ! e2fsck -fn "$img" >"$work/fsck.out" 2>&1; then
		echo "bench: $t: e2fsck -fn finds problems in olimage's image:"; cat "$work/fsck.out"; exit 1
	fi
	inodes=$(dumpe2fs -h "$img" 2>/dev/null | awk -F: '/^Inode count/ { print $2 + 0 }')
	odisk=$(du -B1 "$img" | cut -f1)
	rm -f "$img" "$img.manifest.json"

	# (2) mkfs.ext4 -d into a fresh file of the same size, with olimage's
	# geometry: 4 KiB blocks (mke2fs's "small" type would pick 1 KiB below
	# 512 MiB), 256-byte inodes, as many inodes (mke2fs's default ratio
	# has too few for small60k), no reserved blocks, the same journal.
	prep='rm -f "$mkimg"; truncate -s "$size" "$mkimg"'
	measure "mkfs.ext4 -d ($t)" mkfs.ext4 -q -F -b 4096 -I 256 -N "$inodes" -m 0 "${jopt[@]}" \
		-E root_owner=0:0 -d "$src" "$mkimg" "$((size / 1024))k"
	mdisk=$(du -B1 "$mkimg" | cut -f1)
	rm -f "$mkimg"

	# (3) tar into a real file (GNU tar does not read files for /dev/null).
	prep='rm -f "$tarball"'
	measure "tar -cf FILE ($t)" tar -cf "$tarball" -C "$src" .
	rm -f "$tarball"
	prep=

	awk -v s="$size" -v i="$inodes" -v o="$odisk" -v m="$mdisk" 'BEGIN {
		printf "  image %.1f MiB, %d inodes; on disk: olimage %.1f MB, mkfs.ext4 %.1f MB; e2fsck -fn: clean\n", s / 1048576, i, o / 1e6, m / 1e6 }'
	echo "  ratios: olimage/mkfs $(ratio "olimage build ($t)" "mkfs.ext4 -d ($t)")  olimage/tar $(ratio "olimage build ($t)" "tar -cf FILE ($t)")"
	built+=("$t")
done

# The summary: the numbers above as a table, and the issue's bars.
bar() { # bar NAME TREE VALUE OK: one row of the bars table
	printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(if [ "$4" = 1 ]; then echo PASS; else echo MISS; fi)"
	if [ "$4" = 1 ]; then pass=$((pass + 1)); else miss=$((miss + 1)); fi
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "n/a" && a <= b) ? 1 : 0 }'; }
echo
echo "== summary: wall seconds (best of $runs run(s)), olimage's peak RSS, CPU seconds of the same runs"
echo
echo "| tree | olimage build | mkfs.ext4 -d | tar -cf | olimage/mkfs | olimage/tar | olimage peak RSS | cpu s: olimage, mkfs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for t in "${built[@]}"; do
	o="olimage build ($t)" m="mkfs.ext4 -d ($t)" x="tar -cf FILE ($t)"
	printf '| %s | %.2f s | %.2f s | %.2f s | %s | %s | %d MB | %.2f, %.2f |\n' "$t" "${secs[$o]}" "${secs[$m]}" "${secs[$x]}" \
		"$(ratio "$o" "$m")" "$(ratio "$o" "$x")" "${rss[$o]}" "${cpu[$o]}" "${cpu[$m]}"
done
echo
echo "| bar | tree | measured | result |"
echo "|---|---|---:|---|"
pass=0 miss=0
for t in "${built[@]}"; do
	r=$(ratio "olimage build ($t)" "mkfs.ext4 -d ($t)")
	bar "olimage time <= mkfs.ext4 -d time" "$t" "$r" "$(le "$r" 1)"
	bar "target: olimage time <= 0.6 x mkfs.ext4 -d" "$t" "$r" "$(le "$r" 0.6)"
done
if [ -n "${rss["olimage build (small60k)"]:-}" ]; then
	m=${rss["olimage build (small60k)"]}
	bar "olimage peak RSS < 150 MB" small60k "$m MB" "$(( m < 150 ? 1 : 0 ))"
fi
echo
echo "bars: $pass PASS, $miss MISS (reported only; make bench does not fail on a MISS)"
fi

# size: a build costs what the content costs, not what the declared size
# does. The same ~130 MB tree in a 1 GiB and a 64 GiB volume; the bar is
# 64 GiB within 1.5x of 1 GiB. With --verity the tree (1/128 of the size,
# 512 MiB at 64 GiB, none of it zeros) is written too; --sha256 hashes
# every byte of the declared size, shown at 1 GiB for scale.
if want size; then
echo
echo "== size: the source tree in a 1 GiB and a 64 GiB volume; best of $runs run(s); $(busy)"
tree source
src=$(realpath "$work/source")
echo "  tree: $(describe "$src")"
for sz in 1GiB 64GiB; do
	mkdir -p "$work/fleet-size-$sz/roles"
	printf 'fleet: bench\nepoch: 2024-01-01T00:00:00Z\nsources: {allow_outside: ["%s"]}\n' "$src" > "$work/fleet-size-$sz/olimage.yaml"
	printf 'image: {size: %s}\noverlays:\n  - {name: tree, dir: %s}\n' "$sz" "$src" > "$work/fleet-size-$sz/roles/bench.yaml"
done
warm "$src"
simg=$work/size.img
trap 'rm -f "$simg" "$simg.manifest.json" "$work"/.size.img.*' EXIT
prep='rm -f "$simg" "$simg.manifest.json"'
for v in "" --verity; do
	for sz in 1GiB 64GiB; do
		measure "build $sz${v:+ $v}" "$bin" -f "$work/fleet-size-$sz" build bench -o "$simg" $v
		# Checked once, outside the timing: veritysetup accepts the tree
		# (of the 1 GiB image: veritysetup verify reads every byte).
		if [ "$sz" = 1GiB ] && [ -n "$v" ] && command -v veritysetup >/dev/null && command -v jq >/dev/null; then
			veritysetup verify "$simg" "$simg" "$(jq -r .image.verity.root_hash "$simg.manifest.json")" \
				--hash-offset="$(jq -r .image.verity.hash_offset "$simg.manifest.json")" ||
				{ echo "bench: size: veritysetup verify refuses the 1 GiB image"; exit 1; }
		fi
	done
	# And the 64 GiB image is sound.
	if ! e2fsck -fn "$simg" >"$work/fsck.out" 2>&1; then
		echo "bench: size: e2fsck -fn finds problems in the 64 GiB image:"; cat "$work/fsck.out"; exit 1
	fi
done
measure "build 1GiB --sha256" "$bin" -f "$work/fleet-size-1GiB" build bench -o "$simg" --sha256
prep=
rm -f "$simg" "$simg.manifest.json"
r=$(ratio "build 64GiB" "build 1GiB") rv=$(ratio "build 64GiB --verity" "build 1GiB --verity")
cr=$(awk -v a="${cpu[build 64GiB]}" -v b="${cpu[build 1GiB]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
echo "  ratios 64 GiB / 1 GiB: wall $r, cpu $cr; with --verity: wall $rv (no bar: the tree it writes is 1/128 of the declared size, 512 MiB at 64 GiB)"
echo
echo "| bar | measured | result |"
echo "|---|---:|---|"
printf '| 64 GiB build within 1.5x of 1 GiB (wall) | %s | %s |\n' "$r" "$(awk -v a="$r" 'BEGIN { print (a != "n/a" && a <= 1.5) ? "PASS" : "MISS" }')"
fi

# registry: push and pull of the big tree's image through a local registry
# (Debian's docker-registry), against skopeo copy of the same image as one
# zstd layer in an OCI layout, both ways. Each push goes to a new
# repository, so that no blob is there already.
missing=
for tool in docker-registry skopeo zstd curl python3; do
	command -v "$tool" >/dev/null || missing+=" $tool"
done
if want registry && [ -n "$missing" ]; then
	# Asked for by name it fails; as part of the whole run it is skipped.
	echo "bench: registry: missing:$missing" >&2
	if [ "$only" = registry ]; then exit 2; fi
elif want registry; then
echo
echo "== registry: the big tree's image, push and pull via a local registry; best of $runs run(s); $(busy)"
tree big
fleet "$work/fleet-registry" "$work/big"
rdir=$work/registry rimg=$work/reg.img
rm -rf "$rdir" && mkdir -p "$rdir/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "%s"}\n' \
	"$(realpath "$rdir/data")" "$host" > "$rdir/config.yml"
docker-registry serve "$rdir/config.yml" >"$rdir/log" 2>&1 &
regpid=$!
cleanup_registry() { kill "$regpid" 2>/dev/null; wait "$regpid" 2>/dev/null || true; rm -rf "$rdir" "$rimg" "$rimg.manifest.json" "$work"/.reg.img.* "$work/pulled.img"*; }
trap cleanup_registry EXIT
for _ in $(seq 100); do curl -fs "http://$host/v2/" >/dev/null && break; sleep 0.1; done
"$bin" -f "$work/fleet-registry" build bench -o "$rimg" --sha256 >/dev/null
size=$(stat -c %s "$rimg")
echo "  image: $(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }'), $(du -B1 "$rimg" | awk '{ printf "%.1f MB", $1 / 1e6 }') on disk"
# The same image for skopeo: an OCI layout with one zstd -T0 layer.
oci=$rdir/oci
mkdir -p "$oci/blobs/sha256"
zstd -q -T0 -c "$rimg" > "$oci/layer"
ld=$(sha256sum "$oci/layer" | cut -c1-64) ls=$(stat -c %s "$oci/layer")
mv "$oci/layer" "$oci/blobs/sha256/$ld"
printf '{}' > "$oci/blobs/sha256/cfg"
cd_=$(sha256sum "$oci/blobs/sha256/cfg" | cut -c1-64); mv "$oci/blobs/sha256/cfg" "$oci/blobs/sha256/$cd_"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:%s","size":%s}]}' "$cd_" "$ld" "$ls" > "$oci/m"
md=$(sha256sum "$oci/m" | cut -c1-64) ms=$(stat -c %s "$oci/m"); mv "$oci/m" "$oci/blobs/sha256/$md"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"x"}}]}' "$md" "$ms" > "$oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$oci/oci-layout"
echo "  zstd -T0 of the image: $(awk -v s="$ls" 'BEGIN { printf "%.1f MB", s / 1e6 }')"
echo 0 > "$rdir/n"
next='n=$(($(cat '"$rdir"'/n) + 1)); echo $n > '"$rdir"'/n'
for c in 4 16 64; do
	measure "olimage push --chunk $c" sh -c "$next; '$bin' push --insecure --chunk $c '$rimg' '$host/p$c-'\$n':1'"
done
measure "olimage push -j 1" sh -c "$next; '$bin' push --insecure -j 1 '$rimg' '$host/pj1-'\$n':1'"
measure "skopeo copy oci: -> docker://" sh -c "$next; skopeo copy -q --dest-tls-verify=false 'oci:$oci:x' 'docker://$host/s-'\$n':1'"
# The floor: zstd -T0 and one monolithic upload with curl.
measure "zstd -T0 | curl (floor)" sh -c "$next; zstd -q -T0 -c '$rimg' > '$rdir/floor.zst' && d=\$(sha256sum '$rdir/floor.zst' | cut -c1-64) &&
	loc=\$(curl -fsS -o /dev/null -D - -X POST 'http://$host/v2/f'\$n'/blobs/uploads/' | tr -d '\r' | awk 'tolower(\$1)==\"location:\" { print \$2 }') &&
	case \$loc in http*) ;; *) loc=http://$host\$loc ;; esac &&
	curl -fsS -X PUT -H 'Content-Type: application/octet-stream' -T '$rdir/floor.zst' \"\$loc&digest=sha256:\$d\""
"$bin" push --insecure "$rimg" "$host/pull:1" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$oci:x" "docker://$host/spull:1"
prep='rm -rf "$work/pulled.img" "$work/pulled.img.manifest.json" "$rdir/out"'
for j in 1 4 8; do
	measure "olimage pull -j $j" "$bin" pull --insecure -j "$j" "$host/pull:1" -o "$work/pulled.img"
done
cmp "$rimg" "$work/pulled.img" || { echo "bench: registry: the pulled image differs from the built one"; exit 1; }
measure "skopeo copy docker:// -> oci:" skopeo copy -q --src-tls-verify=false "docker://$host/spull:1" "oci:$rdir/out:x"
measure "skopeo copy + zstd -d (to a raw file)" sh -c "skopeo copy -q --src-tls-verify=false 'docker://$host/spull:1' 'oci:$rdir/out:x' && zstd -q -d -c '$rdir/out/blobs/sha256/$ld' > '$work/pulled.img'"
prep=
echo "  ratios: push/skopeo $(ratio 'olimage push --chunk 16' 'skopeo copy oci: -> docker://')  pull/skopeo+zstd $(ratio 'olimage pull -j 4' 'skopeo copy + zstd -d (to a raw file)')"
fi

# million: 1,000,000 one-byte files (1,000 directories of 1,000) as a
# directory and as a .tar.zst. olimage validate and build against what
# the standard tools take for the same entries in the same run: listing
# the archive (zstd -dc | tar -tf -), unpacking it to a tmpfs (tar -xf)
# and mkfs.ext4 -d of the unpacked tree.
if want million; then
for tool in zstd mkfs.ext4; do
	command -v "$tool" >/dev/null || { echo "bench: million: $tool is missing" >&2; exit 2; }
done
echo
echo "== million: 1M one-byte files in 1,000 directories, as a directory and as .tar.zst, and 1M at virtualenv depth (deep); best of $runs run(s); $(busy)"
tree million
msrc=$(realpath "$work/million")
if [ ! -f "$work/million.tar.zst" ] || [ "$work/million.tar.zst" -ot "$work/.million.stamp" ]; then
	echo "  (writing $work/million.tar.zst)"
	tar -C "$msrc" -cf - . | zstd -q -T0 -o "$work/million.tar.zst.tmp"
	mv "$work/million.tar.zst.tmp" "$work/million.tar.zst"
fi
mz=$(realpath "$work/million.tar.zst")
for kind in dir tar; do
	mkdir -p "$work/fleet-million-$kind/roles"
	printf 'fleet: bench\nepoch: 2024-01-01T00:00:00Z\nsources: {allow_outside: ["%s", "%s"]}\n' "$msrc" "$mz" > "$work/fleet-million-$kind/olimage.yaml"
done
printf 'overlays:\n  - {name: tree, dir: %s}\n' "$msrc" > "$work/fleet-million-dir/roles/bench.yaml"
printf 'overlays:\n  - {name: tree, tar: %s}\n' "$mz" > "$work/fleet-million-tar/roles/bench.yaml"
mimg=$work/million.img mmk=$work/million-mkfs.img mx=$(mktemp -d)
mount -t tmpfs -o size=8g tmpfs "$mx" 2>/dev/null || echo "  (no tmpfs mount; tar -xf goes to $mx on $(df --output=fstype "$mx" | tail -1))"
cleanup_million() { umount "$mx" 2>/dev/null; rm -rf "$mx" "$mimg" "$mimg.manifest.json" "$work"/.million.img.* "$mmk"; }
trap cleanup_million EXIT
warm "$msrc"
measure "zstd -dc | tar -tf -" sh -c "zstd -dc '$mz' | tar -tf - >/dev/null"
prep="rm -rf '$mx'/t; mkdir '$mx'/t"
measure "tar -xf (to tmpfs)" tar -C "$mx/t" -xf "$mz" --zstd
prep=
measure "olimage validate (.tar.zst)" "$bin" -f "$work/fleet-million-tar" validate
measure "olimage validate (dir)" "$bin" -f "$work/fleet-million-dir" validate
prep='rm -f "$mimg" "$mimg.manifest.json"'
measure "olimage build (.tar.zst)" "$bin" -f "$work/fleet-million-tar" build bench -o "$mimg"
measure "olimage build (dir)" "$bin" -f "$work/fleet-million-dir" build bench -o "$mimg"
if ! e2fsck -fn "$mimg" >"$work/fsck.out" 2>&1; then
	echo "bench: million: e2fsck -fn finds problems in olimage's image:"; cat "$work/fsck.out"; exit 1
fi
msize=$(stat -c %s "$mimg")
minodes=$(dumpe2fs -h "$mimg" 2>/dev/null | awk -F: '/^Inode count/ { print $2 + 0 }')
prep='rm -f "$mmk"; truncate -s "$msize" "$mmk"'
measure "mkfs.ext4 -d (unpacked tree)" mkfs.ext4 -q -F -b 4096 -I 256 -N "$minodes" -m 0 -j \
	-E root_owner=0:0 -d "$mx/t" "$mmk" "$((msize / 1024))k"
prep=
rm -f "$mmk" "$mimg" "$mimg.manifest.json"
# deep: a million entries again, at the depth of a virtualenv's
# site-packages (paths of about 109 bytes against the million tree's 24),
# where the bytes of paths dominate an entry's.
dz=$work/deep.tar.zst dstamp="deep $(sha256sum bench/gentar/main.go | cut -c1-64)"
if [ ! -f "$dz" ] || [ "$(cat "$work/.deep.stamp" 2>/dev/null)" != "$dstamp" ]; then
	echo "  (writing $dz)"
	go run ./bench/gentar -kind deep "$dz"
	echo "$dstamp" > "$work/.deep.stamp"
fi
dz=$(realpath "$dz")
mkdir -p "$work/fleet-deep/roles"
# One-byte files in 512-byte tar blocks compress about 190 to 1.
printf 'fleet: bench\nepoch: 2024-01-01T00:00:00Z\nsources: {allow_outside: ["%s"], max_ratio: 1000}\n' "$dz" > "$work/fleet-deep/olimage.yaml"
printf 'overlays:\n  - {name: venv, tar: %s}\n' "$dz" > "$work/fleet-deep/roles/bench.yaml"
measure "zstd -dc | tar -tf - (deep)" sh -c "zstd -dc '$dz' | tar -tf - >/dev/null"
measure "olimage validate (deep)" "$bin" -f "$work/fleet-deep" validate
prep='rm -f "$mimg" "$mimg.manifest.json"'
measure "olimage build (deep)" "$bin" -f "$work/fleet-deep" build bench -o "$mimg"
prep=
if ! e2fsck -fn "$mimg" >"$work/fsck.out" 2>&1; then
	echo "bench: million: e2fsck -fn finds problems in olimage's image of deep:"; cat "$work/fsck.out"; exit 1
fi
rm -f "$mimg" "$mimg.manifest.json"
cleanup_million
trap - EXIT
echo
echo "| bar | measured | result |"
echo "|---|---:|---|"
mbar() { printf '| %s | %s | %s |\n' "$1" "$2" "$(awk -v a="$2" -v b="$3" 'BEGIN { print (a != "n/a" && a + 0 <= b) ? "PASS" : "MISS" }')"; }
mbar "validate .tar.zst / (zstd -dc | tar -tf) <= 3" "$(ratio 'olimage validate (.tar.zst)' 'zstd -dc | tar -tf -')" 3
mbar "build .tar.zst / mkfs.ext4 -d <= 1" "$(ratio 'olimage build (.tar.zst)' 'mkfs.ext4 -d (unpacked tree)')" 1
mbar "build dir / mkfs.ext4 -d <= 1" "$(ratio 'olimage build (dir)' 'mkfs.ext4 -d (unpacked tree)')" 1
mbar "build .tar.zst peak RSS < 600 MB" "${rss[olimage build (.tar.zst)]}" 599
mbar "build dir peak RSS < 600 MB" "${rss[olimage build (dir)]}" 599
mbar "build deep .tar.zst peak RSS < 600 MB (paths of 109 bytes)" "${rss[olimage build (deep)]}" 599
echo "  ratios: tar -xf/validate .tar.zst $(ratio 'tar -xf (to tmpfs)' 'olimage validate (.tar.zst)')"
fi

# fleet: nine roles sharing the 60k-file base, each with a file of its
# own: build --all -j 2 against nine single builds one after another. One
# run unless BENCH_RUNS says otherwise: a run builds eighteen images.
if want fleet; then
all_runs=$runs runs=${BENCH_RUNS:-1}
echo
echo "== fleet: nine roles sharing the 60k-file base; best of $runs run(s); $(busy)"
tree small60k
fsrc=$(realpath "$work/small60k") fdir=$work/fleet-nine fout=$work/fleet-nine-out
rm -rf "$fdir" && mkdir -p "$fdir/roles"
printf 'fleet: bench\nepoch: 2024-01-01T00:00:00Z\nsources: {allow_outside: ["%s"]}\n' "$fsrc" > "$fdir/olimage.yaml"
for i in 1 2 3 4 5 6 7 8 9; do
	printf 'overlays:\n  - {name: base, dir: %s}\n  - name: own\n    files:\n      - {path: opt/role, content: "r%s"}\n' "$fsrc" "$i" > "$fdir/roles/r$i.yaml"
done
cleanup_fleet() { rm -rf "$fout"; }
trap cleanup_fleet EXIT
warm "$fsrc"
prep='rm -rf "$fout"; mkdir -p "$fout"'
measure "build --all -j 2" "$bin" -f "$fdir" build --all -j 2 -o "$fout"
measure "nine single builds" sh -c "for i in 1 2 3 4 5 6 7 8 9; do '$bin' -f '$fdir' build r\$i -o '$fout' || exit 1; done"
prep=
for img in "$fout"/*.img; do e2fsck -fn "$img" >"$work/fsck.out" 2>&1 || { echo "bench: fleet: e2fsck -fn: $img"; cat "$work/fsck.out"; exit 1; }; done
r=$(ratio "build --all -j 2" "nine single builds")
echo "  ratio: build --all -j 2 / nine single builds $r (bar: at most 0.4: $(awk -v a="$r" 'BEGIN { print (a != "n/a" && a <= 0.4) ? "PASS" : "MISS" }'))"
cleanup_fleet
trap - EXIT
runs=$all_runs
fi

want diff || exit 0

# diff: two builds of the 60k tree, 1% of files changed.
echo
echo "== diff: two images of the 60k tree, 1% of files changed; best of $runs run(s); $(busy)"
tree small60k
if [ ! -d "$work/small60k-b" ] || [ "$(cat "$work/.small60k-b.stamp" 2>/dev/null)" != "$(cat "$work/.small60k.stamp")" ]; then
	echo "  (writing the changed 60k tree into $work/small60k-b)"
	rm -rf "$work/small60k-b" "$work/small60k-b.tmp"
	"$work/gentree" -kind small60k -change 0.01 "$work/small60k-b.tmp"
	mv "$work/small60k-b.tmp" "$work/small60k-b"
	cat "$work/.small60k.stamp" > "$work/.small60k-b.stamp"
fi
fleet "$work/fleet-diff-a" "$work/small60k"
fleet "$work/fleet-diff-b" "$work/small60k-b"
"$bin" -f "$work/fleet-diff-a" build bench -o "$work/diff-a.img" >/dev/null
"$bin" -f "$work/fleet-diff-b" build bench -o "$work/diff-b.img" >/dev/null
mnt_a=$(mktemp -d) mnt_b=$(mktemp -d)
cleanup_diff() { umount "$mnt_a" "$mnt_b" 2>/dev/null; rmdir "$mnt_a" "$mnt_b"; rm -f "$work"/diff-[ab].img*; }
trap cleanup_diff EXIT
mount -o loop,ro "$work/diff-a.img" "$mnt_a"
mount -o loop,ro "$work/diff-b.img" "$mnt_b"
cat "$work/diff-a.img" "$work/diff-b.img" >/dev/null # page cache, as for every tool
changed=$(diff -rq "$mnt_a" "$mnt_b" | wc -l || true)
echo "  diff -rq finds $changed differing paths"
# diff exits 1 when the trees differ; time must still record the run.
measure "olimage diff (content)" sh -c "'$bin' diff --no-manifests '$work/diff-a.img' '$work/diff-b.img'; [ \$? -eq 1 ]"
measure "olimage diff (manifests)" sh -c "'$bin' diff '$work/diff-a.img' '$work/diff-b.img'; [ \$? -eq 1 ]"
measure "diff -r (loop mounts)" sh -c "diff -r '$mnt_a' '$mnt_b' >/dev/null; [ \$? -eq 1 ]"
echo
echo "| measure | olimage diff (content) | olimage diff (manifests) | diff -r | content/diff -r | diff -r/manifests |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| time | ${secs[olimage diff (content)]} s | ${secs[olimage diff (manifests)]} s | ${secs[diff -r (loop mounts)]} s | $(ratio 'olimage diff (content)' 'diff -r (loop mounts)') | $(ratio 'diff -r (loop mounts)' 'olimage diff (manifests)') |"
bar() { if awk -v a="$2" -v b="$3" "BEGIN { exit !(a $4 b) }"; then echo "  $1: PASS"; else echo "  $1: MISS"; fi; }
bar "full read at or below diff -r" "$(ratio 'olimage diff (content)' 'diff -r (loop mounts)')" 1 "<="
bar "via manifests at least 20x faster than diff -r" "$(ratio 'diff -r (loop mounts)' 'olimage diff (manifests)')" 20 ">="
