package overlays

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/internetarchive/olimage/roles"
)

// writeManyTarZst writes a .tar.zst of dirs directories of per one-byte
// files each, streaming.
func writeManyTarZst(tb testing.TB, name string, dirs, per int) {
	tb.Helper()
	f, err := os.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		tb.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	check := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	for d := range dirs {
		dir := fmt.Sprintf("opt/d%04d", d)
		check(tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}))
		for i := range per {
			check(tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/f%04d", dir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
			_, err := tw.Write([]byte{byte(i)})
			check(err)
		}
	}
	check(tw.Close())
	check(zw.Close())
	check(bw.Flush())
}

// BenchmarkMergeEntries merges a role whose one overlay is a .tar.zst of
// one-byte files and reports the heap the merged tree holds per entry
// (bytes/entry, after a collection) and the time per entry. Run with
//
//	go test -run - -bench MergeEntries -benchtime 1x ./overlays
//
// The 1M case runs unless -short.
func BenchmarkMergeEntries(b *testing.B) {
	for _, dirs := range []int{10, 100, 1000} {
		n := dirs * 1000
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("-short")
			}
			dir := b.TempDir()
			src := filepath.Join(dir, "t.tar.zst")
			writeManyTarZst(b, src, dirs, 1000)
			f := &roles.Fleet{
				Dir: dir, Epoch: 1000,
				Owners: map[string]uint32{"root": 0}, Groups: map[string]uint32{"root": 0},
				Defaults: roles.Defaults{DirMode: 0o755, FileMode: 0o644, ExecMode: 0o755},
			}
			role := &roles.Role{Name: "r", Overlays: []*roles.Overlay{{Name: "t", Kind: roles.TarOverlay, Source: src}}}
			var before, after runtime.MemStats
			b.ResetTimer()
			for range b.N {
				runtime.GC()
				runtime.ReadMemStats(&before)
				res, err := Merge(context.Background(), f, role)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				entries := res.Tree.Len()
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(entries), "bytes/entry")
				runtime.KeepAlive(res)
				res.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}
