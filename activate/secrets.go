package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/internetarchive/olimage/manifest"
)

// ErrSecrets marks a plan whose declared secrets the root disk does not
// hold as the role wants them.
var ErrSecrets = errors.New("secrets missing or wrong")

// checkSecrets checks, before anything changes, that every secret the
// plan declares is on the root disk under root: a regular file (the last
// component no symlink, so that what was checked is what a service
// opens) with the declared owner, group and mode. It lists every one that
// is missing or wrong, with what to do.
func checkSecrets(root string, secrets []manifest.SecretPath) error {
	var errs []error
	for _, s := range secrets {
		if err := manifest.CheckSecretPath(s.Path); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", err, ErrUnsafe))
			continue
		}
		want, err := strconv.ParseUint(s.Mode, 8, 32)
		if err != nil || want > 0o7777 {
			errs = append(errs, fmt.Errorf("secret /%s: mode %q: want four octal digits: %w", s.Path, s.Mode, ErrUnsafe))
			continue
		}
		p := filepath.Join(root, s.Path)
		fi, err := os.Lstat(p)
		owner := fmt.Sprintf("%s:%s (%d:%d)", name(s.Owner, s.UID), name(s.Group, s.GID), s.UID, s.GID)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Errorf("secret /%s: missing; put it there, owned by %s, mode %s: %w", s.Path, owner, s.Mode, ErrSecrets))
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("secret /%s: %w", s.Path, err))
			continue
		case !fi.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("secret /%s: %s, want a regular file: %w", s.Path, describe(p, fi), ErrSecrets))
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			errs = append(errs, fmt.Errorf("secret /%s: no owner known", s.Path))
			continue
		}
		if st.Uid != s.UID || st.Gid != s.GID {
			errs = append(errs, fmt.Errorf("secret /%s: owned by %d:%d, want %s: %w", s.Path, st.Uid, st.Gid, owner, ErrSecrets))
		}
		if got := uint64(st.Mode & 0o7777); got != want {
			errs = append(errs, fmt.Errorf("secret /%s: mode %04o, want %s: %w", s.Path, got, s.Mode, ErrSecrets))
		}
	}
	return errors.Join(errs...)
}

func name(n string, id uint32) string {
	if n != "" {
		return n
	}
	return strconv.FormatUint(uint64(id), 10)
}
