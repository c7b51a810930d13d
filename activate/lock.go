package activate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// LockFile serialises the runs on a root, relative to it. It lives
// outside the state directory, which deactivate removes, so that a run
// waiting for the lock never holds a file of a deleted directory; /run
// is cleared at boot, when no run can be under way.
const LockFile = "run/olimage.lock"

// lockPoll is how often a run waiting for another one's lock tries again.
const lockPoll = 20 * time.Millisecond

// lock takes the lock on root for the whole run: exclusive to change the
// root, shared for a dry run, which never creates the file. It waits for
// another run to finish, until ctx is done.
func lock(ctx context.Context, root string, shared bool) (unlock func(), err error) {
	p := filepath.Join(root, LockFile)
	flags, how := unix.O_RDWR|unix.O_CREAT, unix.LOCK_EX
	if shared {
		flags, how = unix.O_RDONLY, unix.LOCK_SH
	} else if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(p, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if shared && errors.Is(err, unix.ENOENT) {
		return func() {}, nil // no run ever changed this root
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: lock: %w", p, err)
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, fmt.Errorf("%s: waiting for another olimage run to finish: %w", p, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// running reports whether a run holds the lock on root now; status says
// so rather than wait, as what it reads may be half done.
func running(root string) bool {
	fd, err := unix.Open(filepath.Join(root, LockFile), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return errors.Is(unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK)
}
