package overlays

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/roles"
)

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
			testfs.WriteOneByteTarZst(b, src, dirs, 1000)
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
