package ext4

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/tree"
)

// lgetxattr reads an xattr without following symlinks (package syscall
// has no wrapper for it).
func lgetxattr(path, name string) ([]byte, error) {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return nil, err
	}
	n, err := syscall.BytePtrFromString(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	r, _, e := syscall.Syscall6(syscall.SYS_LGETXATTR, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(n)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return nil, e
	}
	return buf[:r], nil
}

func llistxattr(path string) ([]string, error) {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	r, _, e := syscall.Syscall(syscall.SYS_LLISTXATTR, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if e != 0 {
		return nil, e
	}
	var names []string
	for _, s := range bytes.Split(buf[:r], []byte{0}) {
		if len(s) > 0 {
			names = append(names, string(s))
		}
	}
	sort.Strings(names)
	return names, nil
}

// compareMounted checks every entry of tr under mnt, and that mnt holds
// nothing else but lost+found.
func compareMounted(t *testing.T, mnt string, tr *tree.Tree, o Options) {
	t.Helper()
	links := tr.Links()
	seen := map[string]bool{}
	filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Errorf("walk: %v", err)
			return nil
		}
		rel, _ := filepath.Rel(mnt, p)
		if rel != "." && rel != "lost+found" {
			seen[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	for _, e := range tr.Entries {
		if e.Path() == "lost+found" {
			continue
		}
		if !seen[e.Path()] {
			t.Errorf("%s: missing from mounted image", e.Path())
		}
		delete(seen, e.Path())
	}
	for p := range seen {
		if !strings.HasPrefix(p, "lost+found/") {
			t.Errorf("%s: in mounted image but not in tree", p)
		}
	}

	var st syscall.Stat_t
	if err := syscall.Lstat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	rootMode := o.RootMode
	if rootMode == 0 {
		rootMode = 0o755
	}
	if st.Mode&0o7777 != rootMode || st.Uid != o.RootUID || st.Gid != o.RootGID {
		t.Errorf("root: mode %o uid %d gid %d", st.Mode&0o7777, st.Uid, st.Gid)
	}
	inos := map[string]uint64{}
	for _, e := range tr.Entries {
		if err := syscall.Lstat(filepath.Join(mnt, filepath.FromSlash(e.Path())), &st); err == nil {
			inos[e.Path()] = st.Ino
		}
	}
	for _, e := range tr.Entries {
		p := filepath.Join(mnt, filepath.FromSlash(e.Path()))
		if err := syscall.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", e.Path(), err)
			continue
		}
		pe := e
		if e.Type == tree.Hardlink {
			pe = tr.Get(e.Target)
			if st.Ino != inos[e.Target] {
				t.Errorf("%s: inode %d, want %d", e.Path(), st.Ino, inos[e.Target])
			}
		}
		if st.Mode&0o7777 != pe.Mode || st.Uid != pe.UID || st.Gid != pe.GID {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", e.Path(), st.Mode&0o7777, st.Uid, st.Gid, pe.Mode, pe.UID, pe.GID)
		}
		if st.Mtim.Sec != o.Time || st.Ctim.Sec != o.Time || st.Atim.Sec != o.Time {
			t.Errorf("%s: times %v %v %v, want %d", e.Path(), st.Mtim, st.Ctim, st.Atim, o.Time)
		}
		switch pe.Type {
		case tree.File:
			if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size != pe.Size || st.Nlink != uint64(links[pe.Path()]) {
				t.Errorf("%s: mode %o size %d nlink %d, want file of %d bytes, %d links", e.Path(), st.Mode, st.Size, st.Nlink, pe.Size, links[pe.Path()])
			}
			wantDigest(t, e.Path(), p, pe.Digest)
		case tree.Dir:
			if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
				t.Errorf("%s: not a directory", e.Path())
			}
		case tree.Symlink:
			if got, err := os.Readlink(p); err != nil || got != pe.Target {
				t.Errorf("%s: target %q (%v), want %q", e.Path(), got, err, pe.Target)
			}
		}
		var want []string
		for _, x := range pe.Xattrs() {
			want = append(want, x.Name)
			got, err := lgetxattr(p, x.Name)
			if err != nil || !bytes.Equal(got, x.Value) {
				t.Errorf("%s: xattr %s = %q (%v), want %q", e.Path(), x.Name, got, err, x.Value)
			}
		}
		sort.Strings(want)
		if got, err := llistxattr(p); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: xattrs %v (%v), want %v", e.Path(), got, err, want)
		}
	}
}

// TestMount loop-mounts images read-only and compares them with their
// trees, then read-write to change them, then grows them with resize2fs;
// e2fsck must find them clean after each step.
func TestMount(t *testing.T) {
	for _, tc := range imageCases {
		if tc.name == "htree two levels" || tc.name == "deep" {
			continue // covered by TestImages; slow to walk
		}
		t.Run(tc.name, func(t *testing.T) {
			skipLong(t, tc.long)
			o := testOptions()
			o.Headroom, o.InodeHeadroom = 16<<20, 1000 // room for changeMounted
			if tc.opts != nil {
				tc.opts(&o)
			}
			tr := newTree(t, tc.entries(t)...)
			img, l := writeImage(t, tr, o)
			testenv.Fsck(t, img)

			mnt := t.TempDir()
			testenv.MountLoop(t, img, mnt, "ro")
			compareMounted(t, mnt, tr, o)
			testenv.Umount(t, mnt)

			testenv.MountLoop(t, img, mnt, "rw")
			changeMounted(t, mnt, tr)
			testenv.Umount(t, mnt)
			testenv.Fsck(t, img)

			// Grow a fresh copy: resize2fs wants a file system checked
			// since its last mount.
			img2, _ := writeImage(t, tr, o)
			grow := l.Size()*3 + 64<<20
			testenv.Run(t, "resize2fs", img2, fmt.Sprintf("%dK", grow>>10))
			testenv.Fsck(t, img2)
			testenv.MountLoop(t, img2, mnt, "ro")
			var fs syscall.Statfs_t
			if err := syscall.Statfs(mnt, &fs); err != nil {
				t.Fatal(err)
			}
			if got := int64(fs.Blocks) * fs.Bsize; got < grow*9/10 {
				t.Errorf("grown file system has %d bytes, want about %d", got, grow)
			}
			compareMounted(t, mnt, tr, o)
			testenv.Umount(t, mnt)
		})
	}
}

// changeMounted writes, renames and deletes files on a rw mount.
func changeMounted(t *testing.T, mnt string, tr *tree.Tree) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	d := filepath.Join(mnt, "new-dir")
	must(os.Mkdir(d, 0o755))
	for i := range 300 {
		must(os.WriteFile(filepath.Join(d, fmt.Sprintf("n%04d", i)), bytes.Repeat([]byte{byte(i)}, i*37), 0o644))
	}
	for i, e := range tr.Entries {
		p := filepath.Join(mnt, filepath.FromSlash(e.Path()))
		switch {
		case e.Type == tree.Dir && i%2 == 0:
			must(os.WriteFile(filepath.Join(p, "added-here"), []byte("x"), 0o600))
		case e.Type == tree.File && i%3 == 0:
			must(os.Remove(p))
		case e.Type == tree.File && i%3 == 1:
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			must(err)
			_, err = f.Write(bytes.Repeat([]byte("appended"), 1000))
			must(err)
			must(f.Close())
		case e.Type == tree.Symlink:
			must(os.Rename(p, p+".renamed"))
		}
	}
	must(os.WriteFile(filepath.Join(mnt, "big-new"), bytes.Repeat([]byte("0123456789abcdef"), 1<<16), 0o644))
	must(os.RemoveAll(d))
}
