//go:build !linux

package builder

import "testing"

// tmpfsDir returns a directory where the build writes through the page
// cache, which is every directory where O_DIRECT is Linux's alone.
func tmpfsDir(t *testing.T) string {
	return t.TempDir()
}
