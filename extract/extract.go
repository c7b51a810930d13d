// Package extract writes the entries of a tree into a directory of the
// host: files with their content, directories, symlinks, hard links, modes,
// times and, when run as root, owners. It never writes outside the
// directory it is given. It does not read images itself: entries carry
// their content.
package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/internetarchive/olimage/tree"
)

// Result counts what was written.
type Result struct {
	Entries int
	Bytes   int64
	// Owners is false when owners could not be set (not root); the files
	// then belong to whoever ran the extraction.
	Owners bool
}

// Tree writes the entries of t at or below prefix ("" for all) into dir,
// which must not exist or be empty. On failure it removes what it wrote,
// and dir too if it made it, so no half extraction is left behind.
func Tree(ctx context.Context, t *tree.Tree, prefix, dir string) (res *Result, err error) {
	made, err := emptyDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cleanUp(dir, made)
		}
	}()
	// Every write goes through root: no name, however it is resolved,
	// and no symlink, whoever put it there, leads out of dir.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	res = &Result{Owners: os.Geteuid() == 0}
	// dirs are the tree paths of the directories written so far: an entry
	// goes only below one of them, never through anything else that may
	// be there (a symlink of the tree, or one put there meanwhile).
	dirs := map[string]bool{"": true}
	// files maps the path of each File to where its content landed, for
	// its hard links.
	files := map[string]string{}
	var metaLater []*tree.Entry
	buf := make([]byte, 1<<20)
	for _, e := range t.Entries {
		if prefix != "" && e.Path() != prefix && !strings.HasPrefix(e.Path(), prefix+"/") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dst, err := target(e.Path())
		if err != nil {
			return nil, err
		}
		if parent := tree.Parent(e.Path()); !dirs[parent] {
			if e.Path() != prefix {
				return nil, fmt.Errorf("%s: parent %s is not a directory of the tree", e.Path(), parent)
			}
			// Parents of the extracted path are created plainly.
			if err := root.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return nil, err
			}
		}
		switch e.Type {
		case tree.Dir:
			if err := root.Mkdir(dst, 0o700); err != nil {
				return nil, err
			}
			dirs[e.Path()] = true
			metaLater = append(metaLater, e) // modes and times after their contents
		case tree.Symlink:
			if err := root.Symlink(e.Target, dst); err != nil {
				return nil, err
			}
		case tree.Hardlink:
			if first, ok := files[e.Target]; ok {
				if err := root.Link(first, dst); err != nil {
					return nil, fmt.Errorf("%s: hard link to %s: %w", e.Path(), e.Target, err)
				}
				break
			}
			// The file it links to lies outside prefix: this name
			// becomes the file, and the next names link to it.
			n, err := writeFile(ctx, root, dst, e, buf)
			if err != nil {
				return nil, err
			}
			res.Bytes += n
			files[e.Target] = dst
		case tree.File:
			n, err := writeFile(ctx, root, dst, e, buf)
			if err != nil {
				return nil, err
			}
			res.Bytes += n
			files[e.Path()] = dst
		}
		if e.Type == tree.File || e.Type == tree.Symlink || e.Type == tree.Hardlink && files[e.Target] == dst {
			if err := setMeta(root, dst, e, res.Owners); err != nil {
				return nil, err
			}
		}
		res.Entries++
	}
	for i := len(metaLater) - 1; i >= 0; i-- {
		dst, _ := target(metaLater[i].Path())
		if err := setMeta(root, dst, metaLater[i], res.Owners); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// target is a tree path as a name below the root, refusing any path that
// could not be a volume's (the root would refuse one that leaves it too,
// but with a less helpful error).
func target(p string) (string, error) {
	if err := tree.CheckPath(p); err != nil {
		return "", err
	}
	return filepath.FromSlash(p), nil
}

// emptyDir checks that dir is empty, or makes it; made says it did.
func emptyDir(dir string) (made bool, err error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return false, err
	}
	if len(des) > 0 {
		return false, fmt.Errorf("%s: not empty; extract into a new or empty directory", dir)
	}
	return false, nil
}

// cleanUp removes what a failed extraction wrote into dir, and dir itself
// if the extraction made it. Directories may have lost their write bit
// already; it is given back first.
func cleanUp(dir string, made bool) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	if made {
		os.RemoveAll(dir)
		return
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		os.RemoveAll(filepath.Join(dir, de.Name()))
	}
}

func writeFile(ctx context.Context, root *os.Root, dst string, e *tree.Entry, buf []byte) (int64, error) {
	if e.Content == nil {
		return 0, fmt.Errorf("%s: no content to extract", e.Path())
	}
	rc, err := e.Content.Open()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", e.Path(), err)
	}
	defer rc.Close()
	// O_EXCL: never write through something already there.
	f, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := copySparse(f, tree.ContextReader(ctx, rc), buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("%s: %w", e.Path(), err)
	}
	return n, nil
}

// holeBlock is the unit copySparse leaves unwritten when all zero: the
// block size of most file systems, so what it skips becomes a hole.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// copySparse copies r into the new file f, writing only the blocks that
// are not all zeros, so the holes of a sparse file (which read as zeros)
// stay holes on the host rather than filling its disk.
func copySparse(f *os.File, r io.Reader, buf []byte) (int64, error) {
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		for i := 0; i < n; {
			j := i
			for j < n && !bytes.Equal(buf[j:min(j+holeBlock, n)], zeroBlock[:min(holeBlock, n-j)]) {
				j += holeBlock
			}
			j = min(j, n)
			if j > i {
				if _, err := f.WriteAt(buf[i:j], off+int64(i)); err != nil {
					return off + int64(i), err
				}
			}
			i = j + holeBlock // j starts a zero block, or is n
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return off, f.Truncate(off)
		}
		if rerr != nil {
			return off, rerr
		}
	}
}

// setMeta sets e's owner, xattrs, mode and time on dst, a name below
// root. Xattrs go before the mode, while the file is still its owner's
// to open.
func setMeta(root *os.Root, dst string, e *tree.Entry, owners bool) error {
	if owners {
		if err := root.Lchown(dst, int(e.UID), int(e.GID)); err != nil {
			return err
		}
	}
	if e.Type != tree.Symlink {
		if err := setXattrs(root, dst, e, owners); err != nil {
			return err
		}
		if err := root.Chmod(dst, os.FileMode(e.Mode&tree.ModePerm)|special(e.Mode)); err != nil {
			return err
		}
	}
	// Times last, and of the name itself (a symlink's own, not its
	// target's): through the parent directory, opened below root.
	parent, err := root.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer parent.Close()
	ts := unix.NsecToTimespec(time.Unix(e.ModTime, 0).UnixNano())
	if err := unix.UtimesNanoAt(int(parent.Fd()), filepath.Base(dst), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}

// setXattrs sets e's xattrs on dst, a file or directory below root: all of
// them as root, only user.* (what an unprivileged user may set) otherwise.
func setXattrs(root *os.Root, dst string, e *tree.Entry, owners bool) error {
	var f *os.File
	for _, x := range e.Xattrs() {
		if !owners && !strings.HasPrefix(x.Name, "user.") {
			continue
		}
		if f == nil {
			var err error
			if f, err = root.Open(dst); err != nil {
				return err
			}
			defer f.Close()
		}
		if err := unix.Fsetxattr(int(f.Fd()), x.Name, x.Value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("%s: xattr %s: %w", e.Path(), x.Name, err)
		}
	}
	return nil
}

func special(m uint32) os.FileMode {
	var fm os.FileMode
	if m&tree.ModeSetuid != 0 {
		fm |= os.ModeSetuid
	}
	if m&tree.ModeSetgid != 0 {
		fm |= os.ModeSetgid
	}
	if m&tree.ModeSticky != 0 {
		fm |= os.ModeSticky
	}
	return fm
}
