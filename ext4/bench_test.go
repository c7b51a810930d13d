package ext4

import (
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/tree"
)

// benchSource writes a source directory shaped like an Open Library
// deploy: 12,800 files, about 128 MB, in 400 directories.
func benchSource(b testing.TB) string {
	src := filepath.Join(b.TempDir(), "src")
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, 4<<20)
	rng.Read(buf)
	for i := range 12800 {
		d := filepath.Join(src, fmt.Sprintf("pkg%02d", i%20), fmt.Sprintf("mod%02d", i%400/20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		size := 1000 + rng.Intn(9000)
		if i%100 == 0 {
			size = 400<<10 + rng.Intn(2<<20)
		}
		off := rng.Intn(len(buf) - size)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file%05d.py", i)), buf[off:off+size], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return src
}

// treeFromDir reads a directory into a tree (regular files and dirs).
func treeFromDir(b testing.TB, src string) *tree.Tree {
	var es []*tree.Entry
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			es = append(es, dir(rel, 0o755))
			return nil
		}
		es = append(es, file(b, rel, 0o644, fileContent(p)))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return newTree(b, es...)
}

// BenchmarkMkfs is mkfs.ext4 -d on BenchmarkWrite's tree, to compare:
// go test ./ext4 -run - -bench . -benchtime 5x
func BenchmarkMkfs(b *testing.B) {
	mkfs := testenv.Tool(b, "mkfs.ext4")
	src := benchSource(b)
	l, err := Plan(treeFromDir(b, src), benchOptions())
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "mkfs.img")
	b.ResetTimer()
	for range b.N {
		os.Remove(out)
		cmd := exec.Command(mkfs, "-q", "-F", "-b", "4096", "-d", src, out, fmt.Sprintf("%dK", l.Size()>>10))
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("mkfs.ext4: %v %s", err, o)
		}
	}
}

func benchOptions() Options {
	o := testOptions()
	o.Headroom = 64 << 20
	o.InodeHeadroom = 10000
	return o
}

// BenchmarkWrite plans and writes the tree of an Open Library deploy.
func BenchmarkWrite(b *testing.B) {
	src := benchSource(b)
	tr := treeFromDir(b, src)
	o := benchOptions()
	out := filepath.Join(b.TempDir(), "bench.img")
	b.ResetTimer()
	for range b.N {
		l, err := Plan(tr, o)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.WriteTo(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
