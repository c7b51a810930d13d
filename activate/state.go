package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// OpState reports a state directory activation made. It is not
// journaled: deactivate leaves state where it is.
const OpState Op = "state"

// checkState checks the state paths of a plan before anything changes.
func checkState(st []manifest.StatePath) error {
	var errs []error
	for _, s := range st {
		if err := tree.CheckStatePath(s.Path); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", err, ErrUnsafe))
			continue
		}
		if m, err := strconv.ParseUint(s.Mode, 8, 32); err != nil || m > 0o7777 {
			errs = append(errs, fmt.Errorf("state path /%s: mode %q: want four octal digits", s.Path, s.Mode))
		}
	}
	return errors.Join(errs...)
}

// makeState creates the state directories of a plan that are missing,
// parents included (root's, mode 0755), with the fleet's owner and mode;
// a directory already there is left as it is, contents, owner and mode.
// It follows symlinks: the root disk is the VM's own, and a state
// directory may well live on another disk through one. With dryRun it
// only reports.
func makeState(root string, st []manifest.StatePath, dryRun bool) ([]Change, error) {
	var out []Change
	for _, s := range st {
		p := filepath.Join(root, s.Path)
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return out, fmt.Errorf("state path /%s: %s, want a directory; olimage never removes state", s.Path, describe(p, fi))
		case !errors.Is(err, fs.ErrNotExist):
			return out, err
		}
		out = append(out, Change{Op: OpState, Path: s.Path})
		if dryRun {
			continue
		}
		m, _ := strconv.ParseUint(s.Mode, 8, 32) // checked by checkState
		mode := fs.FileMode(m & 0o777)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return out, err
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return out, err
		}
		if err := os.Lchown(p, int(s.UID), int(s.GID)); err != nil {
			return out, fmt.Errorf("state path /%s: %w", s.Path, err)
		}
		if m&0o7000 != 0 {
			mode |= fileModeBits(uint32(m))
		}
		if err := os.Chmod(p, mode); err != nil {
			return out, err
		}
	}
	return out, nil
}

// fileModeBits turns setuid, setgid and sticky bits into fs.FileMode.
func fileModeBits(m uint32) fs.FileMode {
	var f fs.FileMode
	if m&0o4000 != 0 {
		f |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		f |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		f |= fs.ModeSticky
	}
	return f
}
