package ext4

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/tree"
)

// sampleTree has a bit of everything, for determinism and sink tests.
func sampleTree(t testing.TB) *tree.Tree {
	var es []*tree.Entry
	for _, tc := range imageCases {
		if tc.name == "300 MiB" || tc.name == "htree two levels" || tc.name == "lost+found in tree" {
			continue
		}
		for _, e := range tc.entries(t) {
			e.SetPath(strings.ReplaceAll(tc.name, " ", "-") + "/" + e.Path())
			if e.Type == tree.Hardlink {
				e.Target = strings.ReplaceAll(tc.name, " ", "-") + "/" + e.Target
			}
			es = append(es, e)
		}
		es = append(es, dir(strings.ReplaceAll(tc.name, " ", "-"), 0o755))
	}
	return newTree(t, es...)
}

func sha(t testing.TB, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestDeterministic(t *testing.T) {
	o := testOptions()
	img1, _ := writeImage(t, sampleTree(t), o)
	img2, _ := writeImage(t, sampleTree(t), o)
	if sha(t, img1) != sha(t, img2) {
		t.Fatal("the same tree gave different images")
	}
	// A non-seekable writer gets the same bytes, zeros written out.
	l, err := Plan(sampleTree(t), o)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := l.WriteTo(struct{ io.Writer }{h})
	if err != nil || n != l.Size() {
		t.Fatalf("WriteTo(hash): %d, %v", n, err)
	}
	if got := [32]byte(h.Sum(nil)); got != sha(t, img1) {
		t.Fatal("streamed image differs from the file image")
	}
	testenv.Fsck(t, img1)
}

func TestSparseOutput(t *testing.T) {
	tr := newTree(t, file(t, "f", 0o644, memContent("x")))
	o := testOptions()
	o.Size = 64 << 20
	img, _ := writeImage(t, tr, o)
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 2<<20 {
		t.Errorf("image of %d bytes uses %d bytes on disk, want it sparse", o.Size, used)
	}
	testenv.Fsck(t, img)
}

func TestNoSpace(t *testing.T) {
	tr := newTree(t, file(t, "big", 0o644, &genContent{size: 20 << 20}))
	o := testOptions()
	o.Size = 16 << 20
	_, err := Plan(tr, o)
	var ns *NoSpaceError
	if !errors.As(err, &ns) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Plan: got %v, want a NoSpaceError", err)
	}
	if ns.Need <= 20<<20 || ns.Need > 32<<20 || ns.Size != o.Size {
		t.Fatalf("NoSpaceError: %+v", ns)
	}
	// The size it asks for works.
	o.Size = ns.Need
	img, _ := writeImage(t, tr, o)
	testenv.Fsck(t, img)
}

func TestTooManyInodes(t *testing.T) {
	var es []*tree.Entry
	for i := range 300 {
		es = append(es, dir(fmt.Sprintf("d%03d", i), 0o755))
	}
	o := testOptions()
	o.Size = 8 << 20
	o.InodeHeadroom = 40000
	_, err := Plan(newTree(t, es...), o)
	var ie *InodesError
	if !errors.As(err, &ie) || !errors.Is(err, ErrTooManyInodes) || ie.Need < 40000 {
		t.Fatalf("Plan: got %v, want an InodesError", err)
	}
	// Auto size grows to hold them.
	o.Size = 0
	img, l := writeImage(t, newTree(t, es...), o)
	if total, used := l.Inodes(); total-used < 40000 {
		t.Fatalf("inodes %d used %d, want 40000 free", total, used)
	}
	testenv.Fsck(t, img)
}

// changingContent returns different bytes on the second Open.
type changingContent struct {
	first, later []byte
	opens        int
}

func (c *changingContent) Open() (io.ReadCloser, error) {
	c.opens++
	if c.opens == 1 {
		return io.NopCloser(bytes.NewReader(c.first)), nil
	}
	return io.NopCloser(bytes.NewReader(c.later)), nil
}

func TestContentChanged(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 100<<10)
	for _, tc := range []struct {
		name   string
		digest []byte // content the entry's digest is of
		c      tree.Content
	}{
		{"longer", []byte("abc"), memContent("abcd")},
		{"longer than whole blocks", bytes.Repeat([]byte("a"), 2*BlockSize), memContent(bytes.Repeat([]byte("a"), 2*BlockSize+1))},
		{"shorter", []byte("abcd"), memContent("abc")},
		{"same size", []byte("abcd"), memContent("abce")},
		{"hole filled", append(make([]byte, 100<<10), 'x'), &changingContent{first: append(make([]byte, 100<<10), 'x'), later: append(bytes.Clone(big), 'x')}},
	} {
		// Confirmed by SHA-256, and by the CRC-32C check a tree may carry.
		for _, check := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/check=%v", tc.name, check), func(t *testing.T) {
				sum := sha256.Sum256(tc.digest)
				e := (&tree.Entry{Type: tree.File, Mode: 0o644, Size: int64(len(tc.digest)),
					Digest: sum, Content: tc.c}).WithPath("dir/file")
				if check {
					e.Check, e.HasCheck = crc32.Checksum(tc.digest, crc32.MakeTable(crc32.Castagnoli)), true
				}
				if cc, ok := tc.c.(*changingContent); ok {
					cc.opens = 0 // each case sees the content change anew
				}
				l, err := Plan(newTree(t, dir("dir", 0o755), e), testOptions())
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				_, err = l.WriteTo(io.Discard)
				if !errors.Is(err, ErrContentChanged) || !strings.HasPrefix(err.Error(), "dir/file: ") {
					t.Fatalf("WriteTo: got %v, want a content-changed error for dir/file", err)
				}
			})
		}
	}
}

// TestContentCheckPasses writes unchanged content confirmed by its check.
func TestContentCheckPasses(t *testing.T) {
	data := []byte("unchanged content\n")
	sum := sha256.Sum256(data)
	e := (&tree.Entry{Type: tree.File, Mode: 0o644, Size: int64(len(data)), Digest: sum,
		Content: memContent(string(data)), Check: crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)), HasCheck: true}).WithPath("f")
	l, err := Plan(newTree(t, e), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.WriteTo(io.Discard); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []*tree.Entry
		opts    func(o *Options)
		want    string
	}{
		{"no parent", []*tree.Entry{(&tree.Entry{Type: tree.Dir}).WithPath("a/b")}, nil, `a/b: parent directory "a"`},
		{"parent is file", []*tree.Entry{(&tree.Entry{Type: tree.File, Content: memContent("")}).WithPath("a"), (&tree.Entry{Type: tree.Dir}).WithPath("a/b")}, nil, `a/b: parent directory "a"`},
		{"bad hardlink", []*tree.Entry{(&tree.Entry{Type: tree.Hardlink, Target: "nope"}).WithPath("a")}, nil, `a: hard link target "nope"`},
		{"empty symlink", []*tree.Entry{(&tree.Entry{Type: tree.Symlink}).WithPath("a")}, nil, "a: symlink target"},
		{"long name", []*tree.Entry{(&tree.Entry{Type: tree.Dir}).WithPath(strings.Repeat("n", 256))}, nil, "is 256 bytes"},
		{"acl", []*tree.Entry{(&tree.Entry{Type: tree.Dir}).WithPath("a").WithXattrs(tree.Xattr{Name: "system.posix_acl_access", Value: []byte{1}})}, nil, "a: xattr \"system.posix_acl_access\""},
		{"lost+found file", []*tree.Entry{(&tree.Entry{Type: tree.File, Content: memContent("")}).WithPath("lost+found")}, nil, "lost+found: must be a directory"},
		{"label", nil, func(o *Options) { o.Label = strings.Repeat("l", 17) }, "label"},
		{"size", nil, func(o *Options) { o.Size = 1<<20 + 1 }, "multiple of 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			if tc.opts != nil {
				tc.opts(&o)
			}
			_, err := Plan(newTree(t, tc.entries...), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Plan: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// fileContent reads a file from disk, as the overlays package will.
type fileContent string

func (f fileContent) Open() (io.ReadCloser, error) { return os.Open(string(f)) }

var _ = filepath.Join

// skipHasher is a Skipper that hashes skipped runs as zeros.
type skipHasher struct {
	h       io.Writer
	skipped int64
}

func (s *skipHasher) Write(p []byte) (int, error) { return s.h.Write(p) }

func (s *skipHasher) Skip(n int64) error {
	s.skipped += n
	_, err := io.CopyN(s.h, zeroReader{}, n)
	return err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestSkipper(t *testing.T) {
	o := testOptions()
	o.Size = 128 << 20
	l, err := Plan(sampleTree(t), o)
	if err != nil {
		t.Fatal(err)
	}
	plain, skipping := sha256.New(), &skipHasher{h: sha256.New()}
	if _, err := l.WriteTo(struct{ io.Writer }{plain}); err != nil {
		t.Fatal(err)
	}
	n, err := l.WriteTo(skipping)
	if err != nil || n != o.Size {
		t.Fatalf("WriteTo(Skipper): %d, %v", n, err)
	}
	if !bytes.Equal(plain.Sum(nil), skipping.h.(hash.Hash).Sum(nil)) {
		t.Fatal("Skipper output differs from plain output")
	}
	if skipping.skipped < o.Size/4 {
		t.Fatalf("skipped %d of %d bytes, want most of the empty image skipped", skipping.skipped, o.Size)
	}
}

func TestAutoSize(t *testing.T) {
	tr := newTree(t, file(t, "f", 0o644, &genContent{size: 10 << 20}))
	for _, tc := range []struct {
		name     string
		headroom int64
		percent  float64
		reserved float64
	}{
		{"bytes", 50 << 20, 0, 0},
		{"percent", 0, 300, 0},
		{"reserved", 8 << 20, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.Headroom, o.HeadroomPercent, o.ReservedPercent = tc.headroom, tc.percent, tc.reserved
			img, l := writeImage(t, tr, o)
			testenv.Fsck(t, img)
			want := max(tc.headroom, int64(float64(10<<20)*tc.percent/100)) + int64(float64(l.Size())*tc.reserved/100)
			free := int64(l.FreeBlocks()) * BlockSize
			if free < want || free > want+8<<20 {
				t.Errorf("free %d bytes, want %d to %d more", free, want, 8<<20)
			}
			if l.Size()%(1<<20) != 0 {
				t.Errorf("size %d is not a whole MiB", l.Size())
			}
			if tc.reserved > 0 && !strings.Contains(debugfs(t, img, "stats"), fmt.Sprintf("Reserved block count:     %d", uint64(float64(l.Blocks())*tc.reserved/100))) {
				t.Errorf("reserved block count wrong")
			}
		})
	}
}
