package overlays

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/tree"
)

// naiveData is the non-zero block runs of b, block by block.
func naiveData(b []byte) []tree.BlockRun {
	var runs []tree.BlockRun
	for i := 0; i < len(b); i += tree.SparseBlock {
		blk := b[i:min(i+tree.SparseBlock, len(b))]
		if bytes.Count(blk, []byte{0}) == len(blk) {
			continue
		}
		n := uint32(i / tree.SparseBlock)
		if k := len(runs); k > 0 && runs[k-1].Start+runs[k-1].Count == n {
			runs[k-1].Count++
		} else {
			runs = append(runs, tree.BlockRun{Start: n, Count: 1})
		}
	}
	return runs
}

func TestSums(t *testing.T) {
	const B = tree.SparseBlock
	rng := rand.New(rand.NewPCG(1, 2))
	blocks := func(spec string, tail int) []byte {
		// spec: one letter per block, z for zeros, d for data; tail adds
		// that many bytes of a last partial block of data.
		var b []byte
		for _, c := range spec {
			blk := make([]byte, B)
			if c == 'd' {
				blk[rng.IntN(B)] = byte(1 + rng.IntN(255))
			}
			b = append(b, blk...)
		}
		if tail > 0 {
			t := make([]byte, tail)
			t[tail-1] = 7
			b = append(b, t...)
		}
		return b
	}
	cases := map[string][]byte{
		"empty":              nil,
		"small":              []byte("hello"),
		"small zeros":        make([]byte, 100),
		"dense":              blocks("dddddddddddddddddddd", 0),
		"all zeros":          blocks("zzzzzzzzzzzzzzzzzzzz", 0),
		"zeros in middle":    blocks("dddzzzzzzzzzzzzzzddd", 0),
		"zero head and tail": blocks("zzzzzdddddddddddzzzzz", 0),
		"alternating":        blocks("dzdzdzdzdzdzdzdzdzdz", 0),
		"data tail":          blocks("dddddddddzzzzzzzzzzz", 100),
		"zero partial tail":  append(blocks("dddddddddddddddddddd", 0), make([]byte, 100)...),
	}
	for name, b := range cases {
		// Every chunking must give the same answer, blocks split across
		// writes included.
		for _, chunk := range []int{1 << 20, B, 1000, 4097, 1} {
			if chunk == 1 && len(b) > 1<<17 {
				continue
			}
			s := newSums(int64(len(b)))
			for p := b; len(p) > 0; {
				k := min(chunk, len(p))
				s.Write(p[:k])
				p = p[k:]
			}
			got := s.sums()
			d := sha256.Sum256(b)
			if got.size != int64(len(b)) || got.digest != d ||
				got.check != crc32.Checksum(b, castagnoli) {
				t.Errorf("%s, chunks of %d: size/digest/check wrong: %+v", name, chunk, got)
			}
			if want := len(b) >= tree.SparseMin; got.hasData != want {
				t.Errorf("%s, chunks of %d: hasData %v, want %v", name, chunk, got.hasData, want)
			}
			if !got.hasData {
				continue
			}
			if diff := cmp.Diff(naiveData(b), got.data); diff != "" {
				t.Errorf("%s, chunks of %d: data runs (-want +got):\n%s", name, chunk, diff)
			}
		}
	}
}

// A file that grew or shrank after it was listed fails hashing, naming it.
func TestHashChangedSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, listed := range []int64{5, 20} {
		h := newHasher(context.Background(), 2)
		fc := listedFile(t, p)
		fc.size = listed
		h.add((&tree.Entry{Type: tree.File, Size: listed, Content: fc}).WithPath("f"))
		err := h.wait()
		if err == nil || !strings.Contains(err.Error(), p+": changed while being read") {
			t.Errorf("listed as %d bytes, 10 read: got %v, want a changed-while-read error naming %s", listed, err, p)
		}
	}
}

// listedFile lists the file at p as a directory source's walk would.
func listedFile(t *testing.T, p string) fileContent {
	t.Helper()
	root, err := openDirRoot(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.close() })
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileContent{root, "", filepath.Base(p), fi.Size(), fileID{uint64(st.Dev), uint64(st.Ino)}}
}

// Hashing small files keeps small buffers: a worker's buffer follows the
// largest file it has met, not what the policy scans of the largest
// possible one (1 MiB a worker, 4 workers a CPU).
func TestHasherBuffersFollowSize(t *testing.T) {
	dir := t.TempDir()
	var fcs []fileContent
	for i := range 64 {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		fcs = append(fcs, listedFile(t, p))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := newHasher(context.Background(), 8)
	for i, fc := range fcs {
		h.add((&tree.Entry{Type: tree.File, Size: 1, Content: fc}).WithPath(fmt.Sprintf("f%d", i)))
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > policy.ScanLimit/2 {
		t.Errorf("hashing 64 one-byte files on 8 workers allocated %d bytes, want under %d", got, policy.ScanLimit/2)
	}
}
