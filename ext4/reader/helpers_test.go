package reader

import (
	"golang.org/x/sys/unix"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/tree"
)

// mkfs makes an image of sizeKB KiB from dir (none if "") with mkfs.ext4
// and extra options, with fixed UUID, seed and times.
func mkfs(t testing.TB, dir string, sizeKB int, opts ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "test.img")
	args := []string{"-q", "-F", "-U", "12345678-1234-1234-1234-123456789abc", "-E", "hash_seed=87654321-4321-4321-4321-cba987654321", "-L", "testlabel"}
	args = append(args, opts...)
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, img, strconv.Itoa(sizeKB)+"k")
	cmd := exec.Command(testenv.Tool(t, "mkfs.ext4"), args...)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1700000000", "MKE2FS_CONFIG=/etc/mke2fs.conf")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return img
}

// openImage opens img with the reader.
// openBytes opens the image held in b.
func openBytes(t testing.TB, b []byte) *FS {
	t.Helper()
	fsys, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return fsys
}

func openImage(t testing.TB, img string) *FS {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(f, fi.Size())
	if err != nil {
		t.Fatalf("Open %s: %v", img, err)
	}
	return fsys
}

func readTree(t testing.TB, fsys *FS) *tree.Tree {
	t.Helper()
	tr, err := fsys.Tree(context.Background(), true)
	if err != nil {
		t.Fatalf("Tree: %v", err)
	}
	return tr
}

func wantClean(t testing.TB, fsys *FS) {
	t.Helper()
	if fs := fsys.Check(context.Background()); len(fs) > 0 {
		var b strings.Builder
		for _, f := range fs {
			b.WriteString(f.String() + "\n")
		}
		t.Errorf("Check found %d problems:\n%s", len(fs), b.String())
	}
}

// cmpEntry is the part of an entry compared between a source and an image.
type cmpEntry struct {
	Path    string
	Type    tree.Type
	Mode    uint32
	UID     uint32
	GID     uint32
	ModTime int64
	Size    int64
	Digest  tree.Digest
	Target  string
	Xattrs  map[string]string
}

func toCmp(tr *tree.Tree) []cmpEntry {
	var out []cmpEntry
	for _, e := range tr.Entries {
		c := cmpEntry{Path: e.Path(), Type: e.Type, Mode: e.Mode, UID: e.UID, GID: e.GID, ModTime: e.ModTime, Target: e.Target}
		if e.Type == tree.File || e.Type == tree.Hardlink {
			c.Size, c.Digest = e.Size, e.Digest
		}
		if e.Type == tree.Dir || e.Type == tree.Symlink {
			c.ModTime = 0 // mke2fs -d sets these from the source, but the kernel may touch dirs
		}
		for _, x := range e.Xattrs() {
			if c.Xattrs == nil {
				c.Xattrs = map[string]string{}
			}
			c.Xattrs[x.Name] = hex.EncodeToString(x.Value)
		}
		out = append(out, c)
	}
	return out
}

// sourceTree reads a directory on the host into a tree, the way the
// image should come back.
func sourceTree(t testing.TB, root string) *tree.Tree {
	t.Helper()
	var entries []*tree.Entry
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := (&tree.Entry{Mode: uint32(st.Mode) & tree.ModeMask, UID: st.Uid, GID: st.Gid, ModTime: fi.ModTime().Unix()}).WithPath(rel)
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			e.Type = tree.Dir
		case syscall.S_IFREG:
			e.Type = tree.File
			e.Size = st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			e.Digest = s
			if st.Nlink > 1 {
				e.SetLinkKey(strconv.FormatUint(st.Ino, 10))
				inodes[st.Ino] = rel
			}
		case syscall.S_IFLNK:
			e.Type = tree.Symlink
			e.Target, err = os.Readlink(p)
			if err != nil {
				return err
			}
		default:
			return nil
		}
		e.SetXattrs(hostXattrs(t, p))
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tree.New(entries)
	if err != nil {
		t.Fatal(err)
	}
	tr.Normalize()
	return tr
}

func hostXattrs(t testing.TB, p string) []tree.Xattr {
	buf := make([]byte, 1<<16)
	n, err := unix.Listxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	var out []tree.Xattr
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if strings.HasPrefix(name, "security.selinux") {
			continue
		}
		v := make([]byte, 1<<16)
		m, err := unix.Getxattr(p, name, v)
		if err != nil {
			continue
		}
		out = append(out, tree.Xattr{Name: name, Value: v[:m]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// compareTrees fails with a diff when got and want differ.
func compareTrees(t testing.TB, want, got *tree.Tree) {
	t.Helper()
	if d := cmp.Diff(toCmp(want), toCmp(got)); d != "" {
		t.Errorf("tree differs (-want +got):\n%s", d)
	}
}

// writeFile writes content to root/rel with mode.
func writeFile(t testing.TB, root, rel string, content []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// readAll reads a whole file through the reader.
func readAll(t testing.TB, fsys *FS, p string) []byte {
	t.Helper()
	r, err := fsys.Open(p)
	if err != nil {
		t.Fatalf("Open %s: %v", p, err)
	}
	defer r.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b.Bytes()
}
