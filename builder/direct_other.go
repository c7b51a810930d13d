//go:build !linux

package builder

import (
	"errors"
	"os"
)

// openDirect: O_DIRECT through /proc/self/fd is Linux's; elsewhere every
// write goes through the page cache.
func openDirect(f *os.File) (*os.File, error) {
	return nil, errors.ErrUnsupported
}

// startWriteback: sync_file_range is Linux's; elsewhere the final fsync
// does all the work.
func startWriteback(f *os.File, n int64) {}
