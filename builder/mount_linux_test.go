package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

func xattrs(t *testing.T, p string) []tree.Xattr {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(p, buf)
	if err != nil {
		if err == syscall.ENOTSUP {
			return nil
		}
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out []tree.Xattr
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := syscall.Getxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out = append(out, tree.Xattr{Name: name, Value: v[:m]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// compareMounted walks the mounted image and compares every path and its
// metadata with the tree the image was built from.
func compareMounted(t *testing.T, dir string, tr *tree.Tree, epoch int64) {
	t.Helper()
	seen := map[string]bool{}
	inodes := map[string]uint64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || rel == "lost+found" || rel == tree.OlimageDir || rel == manifest.Path {
			if rel == "lost+found" {
				return fs.SkipDir
			}
			return nil
		}
		seen[rel] = true
		e := tr.Get(rel)
		if e == nil {
			t.Errorf("%s: in the image, not in the tree", rel)
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		wantType := map[tree.Type]uint32{tree.File: syscall.S_IFREG, tree.Hardlink: syscall.S_IFREG, tree.Dir: syscall.S_IFDIR, tree.Symlink: syscall.S_IFLNK}[e.Type]
		if st.Mode&syscall.S_IFMT != wantType {
			t.Errorf("%s: type %o, want %s", rel, st.Mode&syscall.S_IFMT, e.Type)
		}
		if st.Mode&0o7777 != e.Mode {
			t.Errorf("%s: mode %04o, want %04o", rel, st.Mode&0o7777, e.Mode)
		}
		if st.Uid != e.UID || st.Gid != e.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, e.UID, e.GID)
		}
		if st.Mtim.Sec != e.ModTime {
			t.Errorf("%s: mtime %d, want %d", rel, st.Mtim.Sec, e.ModTime)
		}
		switch e.Type {
		case tree.File, tree.Hardlink:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			if int64(len(data)) != e.Size || tree.Digest(sum) != e.Digest {
				t.Errorf("%s: %d bytes sha256 %x, want %d bytes %s", rel, len(data), sum, e.Size, e.Digest)
			}
			key := rel
			if e.Type == tree.Hardlink {
				key = e.Target
			}
			if ino, ok := inodes[key]; ok && ino != st.Ino {
				t.Errorf("%s: inode %d, want %d (hard link of %s)", rel, st.Ino, ino, key)
			}
			inodes[key] = st.Ino
		case tree.Symlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if target != e.Target {
				t.Errorf("%s: target %q, want %q", rel, target, e.Target)
			}
		}
		if e.Type != tree.Symlink {
			if got := xattrs(t, p); !tree.EqualXattrs(got, e.Xattrs()) {
				t.Errorf("%s: xattrs %v, want %v", rel, got, e.Xattrs())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tr.Entries {
		if !seen[e.Path()] {
			t.Errorf("%s: in the tree, not in the image", e.Path())
		}
	}
}

func TestMountedImageMatchesTree(t *testing.T) {
	for _, role := range []string{"ol-web", "ol-covers", "ol-db"} {
		t.Run(role, func(t *testing.T) {
			res, merged := buildMerged(t, role)

			features := testenv.Run(t, "tune2fs", "-l", res.Image)
			for _, feat := range []string{"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "extent", "64bit", "flex_bg", "sparse_super", "large_file", "huge_file", "dir_nlink", "extra_isize", "metadata_csum"} {
				if !strings.Contains(features, " "+feat) {
					t.Errorf("tune2fs -l: feature %s missing", feat)
				}
			}

			dir := t.TempDir()
			testenv.MountLoop(t, res.Image, dir, "ro")
			compareMounted(t, dir, merged.Tree, merged.Epoch)
			testenv.Umount(t, dir)

			// Read-write use keeps the file system consistent.
			testenv.MountLoop(t, res.Image, dir, "rw")
			os.WriteFile(filepath.Join(dir, "opt", "new-file"), bytes.Repeat([]byte("x"), 1<<20), 0o644)
			os.MkdirAll(filepath.Join(dir, "opt", "new-dir", "sub"), 0o755)
			if err := os.RemoveAll(filepath.Join(dir, "opt", "openlibrary", "venv")); err != nil {
				t.Fatal(err)
			}
			testenv.Umount(t, dir)
			testenv.Fsck(t, res.Image)

			// resize2fs grows it and it stays clean.
			if err := os.Truncate(res.Image, res.Size+256<<20); err != nil {
				t.Fatal(err)
			}
			testenv.Run(t, "resize2fs", "-f", res.Image)
			testenv.Fsck(t, res.Image)
		})
	}
}

// TestBuildFullDisk writes an image onto a file system too small for it:
// the error names the output, and nothing is left behind.
func TestBuildFullDisk(t *testing.T) {
	dir := testenv.MountTmpfs(t, "64k")
	f, r := loadRole(t, exampleFleet, "ol-web")
	_, err := Build(context.Background(), f, r, Options{Output: dir})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("got %v, want an error naming %s and saying the disk is full", err, dir)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("full disk holds %d files after the failed build", len(des))
	}
}
