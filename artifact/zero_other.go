//go:build !linux

package artifact

import (
	"errors"
	"os"
)

// zeroRange: BLKZEROOUT and hole punching are Linux's; elsewhere the
// caller writes zeros.
func zeroRange(f *os.File, device bool, off, n int64) error {
	return errors.ErrUnsupported
}
