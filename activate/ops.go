package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrConflict is returned when the root file system holds something at a
// path that activation neither expects nor may touch: a link olimage made
// was replaced, or an original and its backup both exist.
var ErrConflict = errors.New("conflict")

// The file system operations below are idempotent: each checks what is
// at the paths it touches and completes the action from whichever side of
// it the file system is on. That is what lets the next run finish an
// interrupted one. None follows a symlink, neither at the path it changes
// nor in any directory above it below the root: each works in a directory
// it opened one component at a time with O_NOFOLLOW, so a parent swapped
// for a symlink after planning is refused, not followed.

// parent is an open directory and the name of a path within it.
type parent struct {
	fd   int
	name string
	full string // root and path joined, for messages
	rel  string
}

// openParent opens the directory holding root/rel without following
// symlinks below root. With mkdir, missing directories are made (mode
// 0700: only backups ask for them).
func openParent(root, rel string, mkdir bool) (*parent, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	parts := splitPath(rel)
	for i, c := range parts[:len(parts)-1] {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && mkdir {
			if err = unix.Mkdirat(fd, c, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				if err = fsyncFd(fd, filepath.Join(root, strings.Join(parts[:i], "/"))); err == nil {
					next, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				}
			}
		}
		if err != nil {
			dir := strings.Join(parts[:i+1], "/")
			var st unix.Stat_t
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				if unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
					t, _ := readlinkAt(fd, c)
					unix.Close(fd)
					return nil, fmt.Errorf("/%s: %w: /%s is a symlink to %s; olimage never links through a symlink", rel, ErrUnsafe, dir, t)
				}
			}
			unix.Close(fd)
			return nil, &os.PathError{Op: "open", Path: filepath.Join(root, dir), Err: err}
		}
		unix.Close(fd)
		fd = next
	}
	return &parent{fd: fd, name: parts[len(parts)-1], full: filepath.Join(root, rel), rel: rel}, nil
}

func (p *parent) close() { unix.Close(p.fd) }

// lstat is Lstat of the path.
func (p *parent) lstat() (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(p.fd, p.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p.full, Err: err}
	}
	return statInfo{name: p.name, st: st}, nil
}

// readlink returns the path's symlink text.
func (p *parent) readlink() (string, error) { return readlinkAt(p.fd, p.name) }

// sync makes the directory's entries durable.
func (p *parent) sync() error { return fsyncFd(p.fd, filepath.Dir(p.full)) }

func readlinkAt(fd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		k, err := unix.Readlinkat(fd, name, b)
		if err != nil {
			return "", err
		}
		if k < n {
			return string(b[:k]), nil
		}
	}
}

func fsyncFd(fd int, dir string) error {
	if !fsync {
		return nil
	}
	if err := unix.Fsync(fd); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%s: fsync: %w", dir, err)
	}
	return nil
}

// statInfo is an fs.FileInfo of a unix.Stat_t, for describe.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s statInfo) Name() string       { return s.name }
func (s statInfo) Size() int64        { return s.st.Size }
func (s statInfo) ModTime() time.Time { return time.Unix(int64(s.st.Mtim.Sec), int64(s.st.Mtim.Nsec)) }
func (s statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s statInfo) Sys() any           { return &s.st }
func (s statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	return m
}

// describeAt says what the path is, for messages.
func (p *parent) describe(fi fs.FileInfo) string {
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, _ := p.readlink()
		return "a symlink to " + t
	}
	return describe(p.full, fi)
}

// doMkdir creates root/path, a parent directory of a link.
func doMkdir(root, path string) error {
	p, err := openParent(root, path, false)
	if err != nil {
		return err
	}
	defer p.close()
	fi, err := p.lstat()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := unix.Mkdirat(p.fd, p.name, 0o755); err != nil {
			return &os.PathError{Op: "mkdir", Path: p.full, Err: err}
		}
		return p.sync()
	case err != nil:
		return err
	case fi.IsDir():
		return nil
	}
	return fmt.Errorf("/%s: %w: want a directory, found %s", path, ErrConflict, p.describe(fi))
}

// undoMkdir removes root/path if it is an empty directory; a directory
// that has gained entries is left alone.
func undoMkdir(root, path string) error {
	p, fi, err := openStat(root, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer p.close()
	if !fi.IsDir() {
		return nil
	}
	if err := unix.Unlinkat(p.fd, p.name, unix.AT_REMOVEDIR); err != nil {
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return nil
		}
		return fmt.Errorf("/%s: %w", path, err)
	}
	return p.sync()
}

// openStat opens the parent of root/rel and Lstats rel. On an error,
// fs.ErrNotExist when rel or a directory above it is missing, nothing is
// left open.
func openStat(root, rel string) (*parent, fs.FileInfo, error) {
	p, err := openParent(root, rel, false)
	if err != nil {
		return nil, nil, err
	}
	fi, err := p.lstat()
	if err != nil {
		p.close()
		return nil, nil, err
	}
	return p, fi, nil
}

// doMove moves root/path aside to root/backup.
func doMove(root, path, backup string) error {
	p, err := openParent(root, path, false)
	if err != nil {
		return err
	}
	defer p.close()
	_, perr := p.lstat()
	b, _, berr := openStat(root, backup)
	if b != nil {
		defer b.close()
	}
	switch {
	case perr == nil && errors.Is(berr, fs.ErrNotExist):
		if b, err = openParent(root, backup, true); err != nil {
			return err
		}
		defer b.close()
		if err := unix.Renameat(p.fd, p.name, b.fd, b.name); err != nil {
			return &os.LinkError{Op: "rename", Old: p.full, New: b.full, Err: err}
		}
		if err := b.sync(); err != nil {
			return err
		}
		return p.sync()
	case errors.Is(perr, fs.ErrNotExist) && berr == nil:
		return nil // moved before an interruption
	case errors.Is(perr, fs.ErrNotExist) && errors.Is(berr, fs.ErrNotExist):
		return nil // nothing left to move
	case perr == nil && berr == nil:
		return fmt.Errorf("/%s: %w: its backup /%s exists too", path, ErrConflict, backup)
	}
	return errors.Join(perr, berr)
}

// undoMove moves root/backup back to root/path.
func undoMove(root, path, backup string) error {
	b, _, berr := openStat(root, backup)
	if errors.Is(berr, fs.ErrNotExist) {
		return nil // restored before an interruption, or nothing was kept
	}
	if berr != nil {
		return berr
	}
	defer b.close()
	p, err := openParent(root, path, false)
	if err != nil {
		return err
	}
	defer p.close()
	_, perr := p.lstat()
	switch {
	case errors.Is(perr, fs.ErrNotExist):
		if err := unix.Renameat(b.fd, b.name, p.fd, p.name); err != nil {
			return &os.LinkError{Op: "rename", Old: b.full, New: p.full, Err: err}
		}
		if err := p.sync(); err != nil {
			return err
		}
		return b.sync()
	case perr == nil:
		return fmt.Errorf("/%s: %w: cannot restore the original from /%s, something else is there; move it away and run again", path, ErrConflict, backup)
	}
	return perr
}

// doLink makes root/path a symlink to target.
func doLink(root, path, target string) error {
	p, err := openParent(root, path, false)
	if err != nil {
		return err
	}
	defer p.close()
	fi, err := p.lstat()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := unix.Symlinkat(target, p.fd, p.name); err != nil {
			return &os.LinkError{Op: "symlink", Old: target, New: p.full, Err: err}
		}
		return p.sync()
	case err != nil:
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := p.readlink(); err == nil && t == target {
			return nil
		}
	}
	return fmt.Errorf("/%s: %w: want a symlink to %s, found %s", path, ErrConflict, target, p.describe(fi))
}

// undoLink removes root/path if it is the symlink to target olimage made.
func undoLink(root, path, target string) error {
	p, fi, err := openStat(root, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer p.close()
	if fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := p.readlink(); err == nil && t == target {
			if err := unix.Unlinkat(p.fd, p.name, 0); err != nil {
				return &os.PathError{Op: "remove", Path: p.full, Err: err}
			}
			return p.sync()
		}
	}
	return fmt.Errorf("/%s: %w: olimage linked it to %s, now it is %s; move it away and run again", path, ErrConflict, target, p.describe(fi))
}

// describe says what a file is, for messages.
func describe(p string, fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		t, _ := os.Readlink(p)
		return "a symlink to " + t
	default:
		return "a " + strings.TrimSpace(m.Type().String()) + " file"
	}
}

// checkRel checks that p is a clean path relative to the root.
func checkRel(p string) error {
	if p == "" || p == "." || filepath.IsAbs(p) || filepath.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("path %q: want a clean relative path inside the root", p)
	}
	return nil
}

// under reports whether p is dir or inside it (both clean and relative).
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
