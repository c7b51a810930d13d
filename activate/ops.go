package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrConflict is returned when the root file system holds something at a
// path that activation neither expects nor may touch: a link olimage made
// was replaced, or an original and its backup both exist.
var ErrConflict = errors.New("conflict")

// The file system operations below are idempotent: each checks, with
// Lstat, what is at the paths it touches and completes the action from
// whichever side of it the file system is on. That is what lets the next
// run finish an interrupted one. None follows a symlink at the path it
// changes.

// doMkdir creates root/path, a parent directory of a link.
func doMkdir(root, path string) error {
	p := filepath.Join(root, path)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		return syncDir(filepath.Dir(p))
	case err != nil:
		return err
	case fi.IsDir():
		return nil
	}
	return fmt.Errorf("/%s: %w: want a directory, found %s", path, ErrConflict, describe(p, fi))
}

// undoMkdir removes root/path if it is an empty directory; a directory
// that has gained entries is left alone.
func undoMkdir(root, path string) error {
	p := filepath.Join(root, path)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
		return nil
	}
	if err != nil {
		return err
	}
	if err := syscall.Rmdir(p); err != nil {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return nil
		}
		return fmt.Errorf("/%s: %w", path, err)
	}
	return syncDir(filepath.Dir(p))
}

// doMove moves root/path aside to root/backup.
func doMove(root, path, backup string) error {
	p, b := filepath.Join(root, path), filepath.Join(root, backup)
	_, perr := os.Lstat(p)
	_, berr := os.Lstat(b)
	switch {
	case perr == nil && errors.Is(berr, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(b), 0o700); err != nil {
			return err
		}
		if err := os.Rename(p, b); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(b)); err != nil {
			return err
		}
		return syncDir(filepath.Dir(p))
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
	p, b := filepath.Join(root, path), filepath.Join(root, backup)
	_, perr := os.Lstat(p)
	_, berr := os.Lstat(b)
	switch {
	case errors.Is(perr, fs.ErrNotExist) && berr == nil:
		if err := os.Rename(b, p); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
		return syncDir(filepath.Dir(b))
	case errors.Is(berr, fs.ErrNotExist):
		return nil // restored before an interruption, or nothing was kept
	case perr == nil:
		return fmt.Errorf("/%s: %w: cannot restore the original from /%s, something else is there; move it away and run again", path, ErrConflict, backup)
	}
	return errors.Join(perr, berr)
}

// doLink makes root/path a symlink to target.
func doLink(root, path, target string) error {
	p := filepath.Join(root, path)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Symlink(target, p); err != nil {
			return err
		}
		return syncDir(filepath.Dir(p))
	case err != nil:
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := os.Readlink(p); err == nil && t == target {
			return nil
		}
	}
	return fmt.Errorf("/%s: %w: want a symlink to %s, found %s", path, ErrConflict, target, describe(p, fi))
}

// undoLink removes root/path if it is the symlink to target olimage made.
func undoLink(root, path, target string) error {
	p := filepath.Join(root, path)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := os.Readlink(p); err == nil && t == target {
			if err := os.Remove(p); err != nil {
				return err
			}
			return syncDir(filepath.Dir(p))
		}
	}
	return fmt.Errorf("/%s: %w: olimage linked it to %s, now it is %s; move it away and run again", path, ErrConflict, target, describe(p, fi))
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
