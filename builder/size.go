package builder

import (
	"io/fs"
	"syscall"
)

// fileBytes is the space a file takes on disk, which for a sparse image is
// far less than its length.
func fileBytes(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
