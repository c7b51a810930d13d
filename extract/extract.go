// Package extract writes the entries of a tree into a directory of the
// host: files with their content, directories, symlinks, hard links, modes,
// times and, when run as root, owners. It never writes outside the
// directory it is given. It does not read images itself: entries carry
// their content.
package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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
// which must not exist or be empty.
func Tree(ctx context.Context, t *tree.Tree, prefix, dir string) (*Result, error) {
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	res := &Result{Owners: os.Geteuid() == 0}
	var dirs []*tree.Entry
	buf := make([]byte, 1<<20)
	for _, e := range t.Entries {
		if prefix != "" && e.Path != prefix && !strings.HasPrefix(e.Path, prefix+"/") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dst, err := target(dir, e.Path)
		if err != nil {
			return nil, err
		}
		// Parents of an entry below prefix are created plainly.
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		switch e.Type {
		case tree.Dir:
			if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, err
			}
			dirs = append(dirs, e) // modes and times after their contents
		case tree.Symlink:
			if err := os.Symlink(e.Target, dst); err != nil {
				return nil, err
			}
		case tree.Hardlink:
			first, err := target(dir, e.Target)
			if err != nil {
				return nil, err
			}
			if err := os.Link(first, dst); err != nil {
				return nil, fmt.Errorf("%s: hard link to %s: %w", e.Path, e.Target, err)
			}
		case tree.File:
			n, err := writeFile(dst, e, buf)
			if err != nil {
				return nil, err
			}
			res.Bytes += n
		}
		if e.Type != tree.Dir && e.Type != tree.Hardlink {
			if err := setMeta(dst, e, res.Owners); err != nil {
				return nil, err
			}
		}
		res.Entries++
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		dst, _ := target(dir, dirs[i].Path)
		if err := setMeta(dst, dirs[i], res.Owners); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// target maps a tree path into dir, refusing any path that would leave it.
func target(dir, p string) (string, error) {
	if p == "" || strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q: not a path inside the volume", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("%q: not a path inside the volume", p)
		}
	}
	return filepath.Join(dir, filepath.FromSlash(p)), nil
}

func emptyDir(dir string) error {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return err
	}
	if len(des) > 0 {
		return fmt.Errorf("%s: not empty; extract into a new or empty directory", dir)
	}
	return nil
}

func writeFile(dst string, e *tree.Entry, buf []byte) (int64, error) {
	if e.Content == nil {
		return 0, fmt.Errorf("%s: no content to extract", e.Path)
	}
	rc, err := e.Content.Open()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", e.Path, err)
	}
	defer rc.Close()
	// O_EXCL: never write through something already there.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(f, rc, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("%s: %w", e.Path, err)
	}
	return n, nil
}

func setMeta(dst string, e *tree.Entry, owners bool) error {
	if owners {
		if err := os.Lchown(dst, int(e.UID), int(e.GID)); err != nil {
			return err
		}
	}
	if e.Type != tree.Symlink {
		if err := os.Chmod(dst, os.FileMode(e.Mode&tree.ModePerm)|special(e.Mode)); err != nil {
			return err
		}
		for _, x := range e.Xattrs {
			// Only what an unprivileged user may set is attempted without root.
			if owners || strings.HasPrefix(x.Name, "user.") {
				if err := syscall.Setxattr(dst, x.Name, x.Value, 0); err != nil && !errors.Is(err, syscall.ENOTSUP) {
					return fmt.Errorf("%s: xattr %s: %w", e.Path, x.Name, err)
				}
			}
		}
	}
	mt := time.Unix(e.ModTime, 0)
	ts := []syscall.Timespec{syscall.NsecToTimespec(mt.UnixNano()), syscall.NsecToTimespec(mt.UnixNano())}
	return lutimes(dst, ts)
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
