package qcow2

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

// disk returns a virtual disk of size bytes: runs of random data between
// runs of zeros, some shorter than a cluster, and a partial last cluster.
func disk(size int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, size)
	for off := 0; off < size; {
		n := rng.IntN(3*ClusterSize) + 1
		if rng.IntN(2) == 0 {
			for i := off; i < min(off+n, size); i++ {
				b[i] = byte(rng.Uint32() | 1)
			}
		}
		off += n
	}
	copy(b[size-10:], "last bytes")
	return b
}

// write writes data through a Writer, in pieces, passing zero runs of a
// cluster or more with Skip as the ext4 writer does.
func write(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, int64(len(data)))
	for off := 0; off < len(data); {
		end := min(off+5000, len(data))
		if bytes.Count(data[off:end], []byte{0}) == end-off {
			if err := w.Skip(int64(end - off)); err != nil {
				t.Fatal(err)
			}
		} else if _, err := w.Write(data[off:end]); err != nil {
			t.Fatal(err)
		}
		off = end
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != w.FileSize() {
		t.Errorf("file of %d bytes, FileSize says %d", fi.Size(), w.FileSize())
	}
}

// What the writer makes passes qemu-img check, compares equal to the raw
// disk with qemu-img compare, and reads back with Reader; Reader also
// reads what qemu-img convert makes.
func TestWriteCheckRead(t *testing.T) {
	testenv.Tool(t, "qemu-img")
	for _, size := range []int{3*ClusterSize + 512, 40 << 20} {
		data := disk(size)
		dir := t.TempDir()
		raw, img := filepath.Join(dir, "raw"), filepath.Join(dir, "x.qcow2")
		if err := os.WriteFile(raw, data, 0o644); err != nil {
			t.Fatal(err)
		}
		write(t, img, data)
		if out, err := exec.Command("qemu-img", "check", img).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img check: %v\n%s", err, out)
		}
		if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, img).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare: %v\n%s", err, out)
		}
		conv := filepath.Join(dir, "conv.qcow2")
		if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, conv).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v\n%s", err, out)
		}
		for _, p := range []string{img, conv} {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			r, err := NewReader(f, fi.Size())
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			got := make([]byte, r.Size)
			if _, err := r.ReadAt(got, 0); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if r.Size != int64(size) || !bytes.Equal(got, data) {
				t.Errorf("%s: reads back %d bytes, not the %d written", p, r.Size, size)
			}
			f.Close()
		}
	}
}

// Close refuses a disk not written to its end; a write past it fails.
func TestWriterSize(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "x.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, 2*ClusterSize)
	w.Write(make([]byte, ClusterSize))
	if err := w.Close(); err == nil {
		t.Error("Close of a half-written disk: no error")
	}
	if _, err := NewWriter(f, 10).Write(make([]byte, 11)); err == nil {
		t.Error("write past the virtual size: no error")
	}
}

// Any bytes: an error or a reader whose reads stay inside the file, never
// a panic or an unbounded allocation.
func FuzzReader(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.qcow2")
	out, _ := os.Create(p)
	w := NewWriter(out, 3*ClusterSize)
	w.Write(bytes.Repeat([]byte("olimage "), 3*ClusterSize/8))
	w.Close()
	out.Close()
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add(seed[:200])
	f.Add([]byte("QFI\xfb"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for off := int64(0); off < min(r.Size, 1<<20); off += 4096 {
			r.ReadAt(buf, off)
		}
	})
}
