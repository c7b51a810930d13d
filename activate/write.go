package activate

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// doWrite makes root/path a regular file (mode 0644) holding content: a
// temporary file beside it, synced, renamed into place.
func doWrite(root, path, content string) error {
	p, m, absent, err := openTarget(root, path)
	if err != nil {
		return err
	}
	defer p.close()
	if !absent {
		if m.IsRegular() {
			if same, err := p.holds(content); err != nil || same {
				return err
			}
		}
		return fmt.Errorf("/%s: %w: want the file olimage writes, found %s", path, ErrConflict, p.describe(m))
	}
	tmp := "." + p.name + ".olimage"
	unix.Unlinkat(p.fd, tmp, 0) // left by an interrupted run
	fd, err := unix.Openat(p.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: p.full, Err: err}
	}
	f := os.NewFile(uintptr(fd), p.full)
	_, err = io.WriteString(f, content)
	if err == nil {
		err = f.Chmod(0o644) // whatever the umask
	}
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = unix.Renameat(p.fd, tmp, p.fd, p.name); err != nil {
			err = &os.LinkError{Op: "rename", Old: tmp, New: p.full, Err: err}
		}
	}
	if err != nil {
		unix.Unlinkat(p.fd, tmp, 0)
		return err
	}
	return p.sync()
}

// undoWrite removes root/path if it is the file olimage wrote; a file
// changed since is left alone and reported.
func undoWrite(root, path, content string) error {
	p, m, ok, err := openExisting(root, path, "")
	if !ok {
		return err
	}
	defer p.close()
	if m.IsRegular() {
		same, err := p.holds(content)
		if err != nil {
			return err
		}
		if same {
			if err := unix.Unlinkat(p.fd, p.name, 0); err != nil {
				return &os.PathError{Op: "remove", Path: p.full, Err: err}
			}
			return p.sync()
		}
		return fmt.Errorf("/%s: %w: the file olimage wrote was changed since; move it away and run again", path, ErrConflict)
	}
	return fmt.Errorf("/%s: %w: olimage wrote a file there, now it is %s; move it away and run again", path, ErrConflict, p.describe(m))
}

// holds reports whether the path, a regular file, holds exactly content.
func (p *parent) holds(content string) (bool, error) {
	f, err := openFileAt(p.fd, p.name, p.full)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(len(content))+1))
	if err != nil {
		return false, err
	}
	return bytes.Equal(b, []byte(content)), nil
}

// fileHolds reports whether the regular file at the real path p holds
// exactly content; for planning, which reads what the view found.
func fileHolds(p, content string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(len(content))+1))
	return err == nil && bytes.Equal(b, []byte(content))
}

// openFileAt opens name in directory fd for reading, not following a
// symlink; full names it in errors.
func openFileAt(fd int, name, full string) (*os.File, error) {
	f, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return os.NewFile(uintptr(f), full), nil
}
