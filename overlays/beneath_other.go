//go:build !linux

package overlays

import "syscall"

// openBeneath needs openat2, which only Linux has; callers fall back to
// opening by path on ENOSYS.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	return -1, syscall.ENOSYS
}
