package reader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkTreeDigests reads a whole tree with content digests. It uses
// the image named by OLIMAGE_READER_BENCH_IMAGE, or else makes one of
// 5000 small files with mkfs.ext4 -d.
func BenchmarkTreeDigests(b *testing.B) {
	img := os.Getenv("OLIMAGE_READER_BENCH_IMAGE")
	if img == "" {
		src := filepath.Join(b.TempDir(), "src")
		for i := range 5000 {
			writeFile(b, src, fmt.Sprintf("d%02d/f%05d", i%50, i), randBytes(int64(i), 1024+i%8192), 0o644)
		}
		img = mkfs(b, src, 256<<10, "-b", "4096")
	}
	fsys := openImage(b, img)
	var bytes int64
	b.ResetTimer()
	for range b.N {
		tr, err := fsys.Tree(context.Background(), true)
		if err != nil {
			b.Fatal(err)
		}
		bytes = 0
		for _, e := range tr.Entries {
			bytes += e.Size
		}
	}
	b.SetBytes(bytes)
}

// BenchmarkCheck runs Check over the same image.
func BenchmarkCheck(b *testing.B) {
	img := os.Getenv("OLIMAGE_READER_BENCH_IMAGE")
	if img == "" {
		src := filepath.Join(b.TempDir(), "src")
		for i := range 5000 {
			writeFile(b, src, fmt.Sprintf("d%02d/f%05d", i%50, i), []byte("x"), 0o644)
		}
		img = mkfs(b, src, 256<<10, "-b", "4096")
	}
	fsys := openImage(b, img)
	b.ResetTimer()
	for range b.N {
		if fs := fsys.Check(context.Background()); len(fs) > 0 {
			b.Fatalf("findings: %v", fs[0])
		}
	}
}
