package artifact

import (
	"testing"

	"golang.org/x/sys/unix"
)

// statBlocks returns the 512-byte blocks a file uses on disk.
func statBlocks(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}
