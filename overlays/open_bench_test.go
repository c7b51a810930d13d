package overlays

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// smallFiles writes n files of 100 to 4000 bytes, as a source tree of
// Python modules and configuration holds, and returns their paths and
// sizes.
func smallFiles(b *testing.B, n int) ([]string, []int64) {
	b.Helper()
	dir := b.TempDir()
	paths, sizes := make([]string, n), make([]int64, n)
	for i := range n {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%d.py", i))
		sizes[i] = int64(100 + i*37%3900)
		if err := os.WriteFile(paths[i], make([]byte, sizes[i]), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return paths, sizes
}

// BenchmarkHashRaw and BenchmarkHashOS hash 2000 small files as a build
// does: through rawFile (plain system calls, no read at the end of a
// file of the listed size), against os.Open and a read loop.
func BenchmarkHashRaw(b *testing.B) {
	paths, sizes := smallFiles(b, 2000)
	buf := make([]byte, 128<<10)
	b.ResetTimer()
	for range b.N {
		for i, p := range paths {
			f, err := openRegular(p, sizes[i])
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.CopyBuffer(h, f, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	}
}

func BenchmarkHashOS(b *testing.B) {
	paths, _ := smallFiles(b, 2000)
	buf := make([]byte, 128<<10)
	b.ResetTimer()
	for range b.N {
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			// Read, not io.CopyBuffer: *os.File's WriteTo would ignore buf.
			h := sha256.New()
			for {
				n, err := f.Read(buf)
				h.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
		}
	}
}
