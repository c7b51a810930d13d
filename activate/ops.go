package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
// for a symlink after planning is refused, not followed. Backups are the
// exception above BackupDir: olimage's state directory is found the way
// the journal in it is, so a /var that is a symlink to another disk works.

// parent is an open directory and the name of a path within it.
type parent struct {
	fd   int
	name string
	full string // root and path joined, for messages
}

// openParent opens the directory holding root/rel without following
// symlinks below root, or below root/trusted when rel is inside trusted.
// With mkdir, missing directories are made (mode 0700: only backups ask
// for them).
func openParent(root, rel, trusted string, mkdir bool) (*parent, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	start, walk, above := root, rel, ""
	if trusted != "" && strings.HasPrefix(rel, trusted+"/") {
		start, walk, above = filepath.Join(root, trusted), rel[len(trusted)+1:], trusted+"/"
		if mkdir {
			if err := os.MkdirAll(start, 0o700); err != nil {
				return nil, err
			}
		}
	}
	fd, err := unix.Open(start, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: start, Err: err}
	}
	parts := splitPath(walk)
	for i, c := range parts[:len(parts)-1] {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && mkdir {
			if err = unix.Mkdirat(fd, c, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				if err = fsyncFd(fd, filepath.Join(start, strings.Join(parts[:i], "/"))); err == nil {
					next, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				}
			}
		}
		if err != nil {
			dir := above + strings.Join(parts[:i+1], "/")
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				if m, serr := lstatAt(fd, c); serr == nil && m&fs.ModeSymlink != 0 {
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
	return &parent{fd: fd, name: parts[len(parts)-1], full: filepath.Join(root, rel)}, nil
}

func (p *parent) close() { unix.Close(p.fd) }

// lstat returns the mode of the path, not following a symlink.
func (p *parent) lstat() (fs.FileMode, error) {
	m, err := lstatAt(p.fd, p.name)
	if err != nil {
		return 0, &os.PathError{Op: "lstat", Path: p.full, Err: err}
	}
	return m, nil
}

// readlink returns the path's symlink text.
func (p *parent) readlink() (string, error) { return readlinkAt(p.fd, p.name) }

// sync makes the directory's entries durable.
func (p *parent) sync() error { return fsyncFd(p.fd, filepath.Dir(p.full)) }

// describe says what the path, of mode m, is, for messages.
func (p *parent) describe(m fs.FileMode) string {
	return describeMode(m, func() string { t, _ := p.readlink(); return t })
}

// lstatAt returns the mode of name in directory fd, as os.Lstat would.
func lstatAt(fd int, name string) (fs.FileMode, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, err
	}
	return modeOf(&st), nil
}

// modeOf converts the mode of st to the fs.FileMode os.Lstat gives.
func modeOf(st *unix.Stat_t) fs.FileMode {
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
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
	if st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

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

// openTarget opens the parent of root/rel as openParent does, for a step
// that makes rel, and returns rel's mode, or absent when nothing is there.
// On an error nothing is left open.
func openTarget(root, rel string) (p *parent, m fs.FileMode, absent bool, err error) {
	p, err = openParent(root, rel, "", false)
	if err != nil {
		return nil, 0, false, err
	}
	m, err = p.lstat()
	if errors.Is(err, fs.ErrNotExist) {
		return p, 0, true, nil
	}
	if err != nil {
		p.close()
		return nil, 0, false, err
	}
	return p, m, false, nil
}

// doMkdir creates root/path, a parent directory of a link.
func doMkdir(root, path string) error {
	p, m, absent, err := openTarget(root, path)
	if err != nil {
		return err
	}
	defer p.close()
	switch {
	case absent:
		if err := unix.Mkdirat(p.fd, p.name, 0o755); err != nil {
			return &os.PathError{Op: "mkdir", Path: p.full, Err: err}
		}
		return p.sync()
	case m.IsDir():
		return nil
	}
	return fmt.Errorf("/%s: %w: want a directory, found %s", path, ErrConflict, p.describe(m))
}

// undoMkdir removes root/path if it is an empty directory; a directory
// that has gained entries is left alone.
func undoMkdir(root, path string) error {
	p, m, ok, err := openExisting(root, path, "")
	if !ok {
		return err
	}
	defer p.close()
	if !m.IsDir() {
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

// openStat opens the parent of root/rel as openParent does and returns
// rel's mode. On an error, fs.ErrNotExist when rel or a directory above
// it is missing, nothing is left open.
func openStat(root, rel, trusted string) (*parent, fs.FileMode, error) {
	p, err := openParent(root, rel, trusted, false)
	if err != nil {
		return nil, 0, err
	}
	m, err := p.lstat()
	if err != nil {
		p.close()
		return nil, 0, err
	}
	return p, m, nil
}

// openExisting opens root/rel for a step that undoes what made it, as
// openStat does; ok is false, and the error nil, when rel or a directory
// above it is missing: there is nothing to undo.
func openExisting(root, rel, trusted string) (p *parent, m fs.FileMode, ok bool, err error) {
	p, m, err = openStat(root, rel, trusted)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	return p, m, err == nil, err
}

// doMove moves root/path aside to root/backup.
func doMove(root, path, backup string) error {
	p, _, perr := openStat(root, path, "")
	if p != nil {
		defer p.close()
	}
	b, _, berr := openStat(root, backup, BackupDir)
	if b != nil {
		defer b.close()
	}
	switch {
	case perr == nil && errors.Is(berr, fs.ErrNotExist):
		b, err := openParent(root, backup, BackupDir, true)
		if err != nil {
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
	b, _, ok, err := openExisting(root, backup, BackupDir)
	if !ok {
		return err // none if restored before an interruption, or nothing was kept
	}
	defer b.close()
	p, _, absent, err := openTarget(root, path)
	if err != nil {
		return err
	}
	defer p.close()
	if !absent {
		return fmt.Errorf("/%s: %w: cannot restore the original from /%s, something else is there; move it away and run again", path, ErrConflict, backup)
	}
	if err := unix.Renameat(b.fd, b.name, p.fd, p.name); err != nil {
		return &os.LinkError{Op: "rename", Old: b.full, New: p.full, Err: err}
	}
	if err := p.sync(); err != nil {
		return err
	}
	return b.sync()
}

// doLink makes root/path a symlink to target.
func doLink(root, path, target string) error {
	p, m, absent, err := openTarget(root, path)
	if err != nil {
		return err
	}
	defer p.close()
	if absent {
		if err := unix.Symlinkat(target, p.fd, p.name); err != nil {
			return &os.LinkError{Op: "symlink", Old: target, New: p.full, Err: err}
		}
		return p.sync()
	}
	if m&fs.ModeSymlink != 0 {
		if t, err := p.readlink(); err == nil && t == target {
			return nil
		}
	}
	return fmt.Errorf("/%s: %w: want a symlink to %s, found %s", path, ErrConflict, target, p.describe(m))
}

// undoLink removes root/path if it is the symlink to target olimage made.
func undoLink(root, path, target string) error {
	p, m, ok, err := openExisting(root, path, "")
	if !ok {
		return err
	}
	defer p.close()
	if m&fs.ModeSymlink != 0 {
		if t, err := p.readlink(); err == nil && t == target {
			if err := unix.Unlinkat(p.fd, p.name, 0); err != nil {
				return &os.PathError{Op: "remove", Path: p.full, Err: err}
			}
			return p.sync()
		}
	}
	return fmt.Errorf("/%s: %w: olimage linked it to %s, now it is %s; move it away and run again", path, ErrConflict, target, p.describe(m))
}

// describe says what the file at p is, for messages.
func describe(p string, fi fs.FileInfo) string {
	return describeMode(fi.Mode(), func() string { t, _ := os.Readlink(p); return t })
}

// describeMode says what a file of mode m is; readlink gives a symlink's
// text.
func describeMode(m fs.FileMode, readlink func() string) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink to " + readlink()
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
