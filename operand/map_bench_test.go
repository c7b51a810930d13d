package operand

import (
	"context"
	"fmt"
	"testing"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/internal/testimage"
	"github.com/internetarchive/olimage/manifest"
)

// bigManifestImage builds an image of 20k files, whose manifest is some
// 6 MB, and opens it.
func bigManifestImage(b *testing.B) *Operand {
	b.Helper()
	files := map[string]string{}
	for i := range 20000 {
		files[fmt.Sprintf("opt/app/lib/python3.11/site-packages/pkg%d/mod%d.py", i/100, i)] = "x"
	}
	res := testimage.Build(b, testimage.Fleet(b, files), builder.Options{})
	s, err := OpenImage(context.Background(), res.Image, NoTree)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkManifestMapped and BenchmarkManifestRead get an image's
// manifest and decode its head, as inspect and diff do: mapped from the
// image (manifestBytes), against read out of the file system.
func BenchmarkManifestMapped(b *testing.B) {
	s := bigManifestImage(b)
	b.ResetTimer()
	for range b.N {
		off, n, ok, err := s.FS().Contiguous(manifest.Path)
		if err != nil || !ok {
			b.Fatalf("manifest not in one run (%v)", err)
		}
		data, unmap, ok := s.File().Map(off, n)
		if !ok {
			b.Fatal("cannot map")
		}
		if _, _, _, err := manifest.Head(data); err != nil {
			b.Fatal(err)
		}
		unmap()
	}
}

func BenchmarkManifestRead(b *testing.B) {
	s := bigManifestImage(b)
	b.ResetTimer()
	for range b.N {
		data, err := s.FS().ReadFile(manifest.Path)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := manifest.Head(data); err != nil {
			b.Fatal(err)
		}
	}
}
