package builder

import (
	"os"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"golang.org/x/sys/unix"
)

// tmpfsDir returns a directory on a tmpfs, where O_DIRECT is refused, so
// the build writes through the page cache.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		if dir, err := os.MkdirTemp("/dev/shm", "olimage-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	// No usable /dev/shm: mount a tmpfs of our own, as root may.
	return testenv.MountTmpfs(t, "64m")
}
