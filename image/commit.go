package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// An image file and its sidecar manifest (PATH and PATH.manifest.json) are
// replaced as a pair. Both are written to temporaries beside them, then an
// intent file, .NAME.commit, names the two temporaries; from the moment it
// exists the replacement is decided and whoever finds it next (the rest of
// the same build, the next build of the same target, or a read of it)
// completes the renames. A process killed at any point thus leaves either
// the old pair or, once anyone looks, the new one, never a new image
// beside an old sidecar. A build holds .NAME.lock throughout, so two builds
// of one target do not interleave, and the holder removes temporaries that
// a killed build of the same target left.

// SidecarSuffix is what the sidecar manifest's name adds to its image's.
const SidecarSuffix = ".manifest.json"

const (
	intentHeader = "olimage-commit 1"
	intentMax    = 4096 // an intent names two temporaries; anything longer is not one
)

// ErrIntent marks an intent file olimage did not write: it is left alone.
var ErrIntent = errors.New("not an olimage commit intent")

func intentPath(path string) string { return hidden(path, ".commit") }
func lockPath(path string) string   { return hidden(path, ".lock") }

// hidden is the path of the hidden file .NAME+suffix beside path.
func hidden(path, suffix string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+suffix)
}

// TempPrefix is the prefix of the temporaries written for the file at
// path; os.CreateTemp adds digits to it.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// WriteTemp writes data, synced and with mode 0644, to a new temporary
// beside path named as a build names its temporaries (TempPrefix), and
// returns the temporary's path. On an error it leaves nothing behind.
func WriteTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix(path)+"*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// isTemp says whether name is a temporary of the file named base.
func isTemp(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base+".tmp-")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// formatIntent is the intent file naming the image's and the sidecar's
// temporaries, by base name: they are always in the target's directory.
func formatIntent(imageTmp, sidecarTmp string) []byte {
	return []byte(intentHeader + "\nimage " + imageTmp + "\nsidecar " + sidecarTmp + "\n")
}

// parseIntent reads an intent file for the image named base. It accepts
// only temporaries of that image and its sidecar, so a planted intent can
// rename nothing else.
func parseIntent(data []byte, base string) (imageTmp, sidecarTmp string, err error) {
	if len(data) > intentMax {
		return "", "", fmt.Errorf("%w: %d bytes", ErrIntent, len(data))
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) != 4 || lines[3] != "" || lines[0] != intentHeader {
		return "", "", fmt.Errorf("%w: want %q and two lines", ErrIntent, intentHeader)
	}
	imageTmp, ok1 := strings.CutPrefix(lines[1], "image ")
	sidecarTmp, ok2 := strings.CutPrefix(lines[2], "sidecar ")
	if !ok1 || !isTemp(imageTmp, base) {
		return "", "", fmt.Errorf("%w: line 2: want image and a temporary of %s", ErrIntent, base)
	}
	if !ok2 || !isTemp(sidecarTmp, base+SidecarSuffix) {
		return "", "", fmt.Errorf("%w: line 3: want sidecar and a temporary of %s", ErrIntent, base+SidecarSuffix)
	}
	return imageTmp, sidecarTmp, nil
}

// Lock is held by a build of one target.
type Lock struct {
	f    *os.File
	path string
}

// LockTarget waits for .NAME.lock beside the image path, finishes a
// replacement an earlier build was killed in, and removes the temporaries
// builds of path left behind.
func LockTarget(path string) (*Lock, error) {
	l, err := lock(path)
	if err != nil {
		return nil, err
	}
	if err := l.recover(path); err != nil {
		l.Unlock()
		return nil, err
	}
	dir, base := filepath.Dir(path), filepath.Base(path)
	des, err := os.ReadDir(dir)
	if err != nil {
		l.Unlock()
		return nil, err
	}
	for _, d := range des {
		n := d.Name()
		if isTemp(n, base) || isTemp(n, base+SidecarSuffix) || isTemp(n, base+".commit") {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return l, nil
}

// lock takes the lock file beside path. The holder removes the file when
// done, so after taking it check that it is still the file at its path:
// otherwise it was taken on a file its previous holder just removed.
func lock(path string) (*Lock, error) {
	lp := lockPath(path)
	for {
		f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("%s: lock: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: lock: %w", lp, err)
		}
		var a, b unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) == nil && unix.Lstat(lp, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
			return &Lock{f: f, path: lp}, nil
		}
		f.Close()
	}
}

// Unlock removes the lock file and releases it.
func (l *Lock) Unlock() {
	os.Remove(l.path)
	l.f.Close()
}

// Replace puts the temporaries imageTmp and sidecarTmp (complete, synced,
// in path's directory) in place as path and its sidecar. The lock must be
// held. Once the intent is written the replacement is decided: should a
// rename fail, the temporaries stay for the next build or read of path to
// finish.
func (l *Lock) Replace(path, imageTmp, sidecarTmp string) error {
	dir := filepath.Dir(path)
	imageTmp, sidecarTmp = filepath.Base(imageTmp), filepath.Base(sidecarTmp)
	if !isTemp(imageTmp, filepath.Base(path)) || !isTemp(sidecarTmp, filepath.Base(path)+SidecarSuffix) {
		return fmt.Errorf("%s: replace: %s and %s are not its temporaries", path, imageTmp, sidecarTmp)
	}
	// A rename over a directory fails: find out before the replacement
	// is decided, and keep whatever is there now.
	var err error
	for _, p := range []string{path, path + SidecarSuffix} {
		if fi, lerr := os.Lstat(p); lerr == nil && fi.IsDir() {
			err = fmt.Errorf("%s: is a directory", p)
			break
		}
	}
	if err == nil {
		err = writeIntent(path, formatIntent(imageTmp, sidecarTmp))
	}
	if err != nil {
		os.Remove(filepath.Join(dir, imageTmp))
		os.Remove(filepath.Join(dir, sidecarTmp))
		return err
	}
	return l.recover(path)
}

// writeIntent makes the intent file durable, atomically: a kill leaves
// either none or all of it.
func writeIntent(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(intentPath(path))+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: commit: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), intentPath(path))
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(f.Name())
		os.Remove(intentPath(path))
		return fmt.Errorf("%s: commit: %w", path, err)
	}
	return nil
}

// recover completes the replacement an intent beside path names, if there
// is one. The lock must be held.
func (l *Lock) recover(path string) error {
	ip := intentPath(path)
	data, err := readIntent(ip)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	imageTmp, sidecarTmp, err := parseIntent(data, filepath.Base(path))
	if err != nil {
		return fmt.Errorf("%s: %w (remove it if no build of %s was interrupted)", ip, err, filepath.Base(path))
	}
	dir := filepath.Dir(path)
	for _, p := range [][2]string{{imageTmp, path}, {sidecarTmp, path + SidecarSuffix}} {
		tmp := filepath.Join(dir, p[0])
		fi, err := os.Lstat(tmp)
		if errors.Is(err, os.ErrNotExist) {
			continue // renamed before
		}
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file")
		}
		if err == nil {
			err = os.Rename(tmp, p[1])
		}
		if err != nil {
			return fmt.Errorf("%s: finishing an interrupted replacement (%s): %w", p[1], ip, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if err := os.Remove(ip); err != nil {
		return fmt.Errorf("%s: %w", ip, err)
	}
	return syncDir(dir)
}

// readIntent reads the intent file at p: a regular file, not followed
// through a symlink, and bounded in size.
func readIntent(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s: %w: a symlink", p, ErrIntent)
		}
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", p, ErrIntent)
	}
	data, err := io.ReadAll(io.LimitReader(f, intentMax+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return data, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// Settle finishes a replacement of path and its sidecar that a killed
// build left, so a read sees the new pair; path may name either. It does
// nothing, and writes nothing, when no replacement is pending.
func Settle(path string) error {
	path = strings.TrimSuffix(path, SidecarSuffix)
	if _, err := os.Lstat(intentPath(path)); err != nil {
		return nil
	}
	l, err := lock(path)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return l.recover(path)
}
