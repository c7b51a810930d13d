package reader

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/ext4"
	"github.com/internetarchive/olimage/tree"
)

type memContent []byte

func (m memContent) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m)), nil }

func memFile(path string, mode uint32, b []byte) *tree.Entry {
	s := sha256.Sum256(b)
	return (&tree.Entry{Type: tree.File, Mode: mode, Size: int64(len(b)), Digest: s, Content: memContent(b)}).WithPath(path)
}

// olimageTree is a tree with what olimage writes: files of many sizes,
// sparse content, hard links, symlinks, xattrs in the inode and in a
// block, owners, modes and a big (htree) directory.
func olimageTree(t testing.TB, many int) *tree.Tree {
	t.Helper()
	es := []*tree.Entry{
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("etc"),
		(&tree.Entry{Type: tree.Dir, Mode: 0o755, UID: 1000, GID: 1000}).WithPath("opt"),
		(&tree.Entry{Type: tree.Dir, Mode: 0o1777}).WithPath("opt/sticky"),
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: "../etc/hosts"}).WithPath("opt/link"),
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: strings.Repeat("x/", 100)}).WithPath("opt/slowlink"),
		(&tree.Entry{Type: tree.Hardlink, Target: "etc/hosts"}).WithPath("opt/hard2"),
	}
	hosts := memFile("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"))
	hosts.UID, hosts.GID = 100000, 200000
	es = append(es, hosts)
	for _, n := range []int{0, 1, 4095, 4096, 4097, 300000} {
		es = append(es, memFile(fmt.Sprintf("opt/size-%d", n), 0o640, randBytes(int64(n), n)))
	}
	sparse := make([]byte, 1<<20)
	copy(sparse[100000:], randBytes(9, 1000))
	es = append(es, memFile("opt/sparse", 0o600, sparse))
	x := memFile("opt/xattrs", 0o4755, []byte("x"))
	x.SetXattrs([]tree.Xattr{
		{Name: "security.capability", Value: []byte("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
		{Name: "trusted.big", Value: bytes.Repeat([]byte("B"), 600)},
		{Name: "user.a", Value: []byte("1")},
	})
	es = append(es, x)
	es = append(es, (&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("opt/many"))
	for i := range many {
		es = append(es, memFile(fmt.Sprintf("opt/many/f%06d", i), 0o644, []byte(fmt.Sprint(i))))
	}
	for _, e := range es {
		e.ModTime = 1700000000
	}
	tr, err := tree.New(es)
	if err != nil {
		t.Fatal(err)
	}
	// The writer wants hard links settled against their primary.
	h := tr.Get("opt/hard2")
	p := tr.Get("etc/hosts")
	h.Size, h.Digest, h.Content, h.UID, h.GID, h.Mode = p.Size, p.Digest, p.Content, p.UID, p.GID, p.Mode
	return tr
}

func olimageImage(t testing.TB, tr *tree.Tree, journal bool) string {
	t.Helper()
	o := ext4.Options{
		Label:    "olimage-test",
		UUID:     [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		HashSeed: [16]byte{16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
		Time:     1700000000,
		Journal:  journal,
		Headroom: 1 << 20,
	}
	l, err := ext4.Plan(tr, o)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	img := filepath.Join(t.TempDir(), "olimage.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.WriteTo(f); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestOlimageImage(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			t.Parallel()
			want := olimageTree(t, 5000)
			img := olimageImage(t, want, journal)
			fsys := openImage(t, img)
			got := readTree(t, fsys)
			compareTrees(t, want, got)
			// Hard links come back as a File and a Hardlink to it.
			if h := got.Get("opt/hard2"); h == nil || h.Type != tree.Hardlink || h.Target != "etc/hosts" {
				t.Errorf("opt/hard2: %+v", h)
			}
			wantClean(t, fsys)
			info := fsys.Info()
			if info.Label != "olimage-test" || info.UUID != "01020304-0506-0708-090a-0b0c0d0e0f10" || info.BlockSize != 4096 || !info.MetadataCsum {
				t.Errorf("Info: %+v", info)
			}
			if journal != (info.JournalInode == 8) {
				t.Errorf("journal inode %d", info.JournalInode)
			}
		})
	}
}
