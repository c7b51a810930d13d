package builder

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens f again for writing with O_DIRECT, or fails where the
// file system does not support it (tmpfs, for one). It opens f's own
// descriptor through /proc rather than its name, which another process
// could have replaced in the meantime, and checks it got the same file.
func openDirect(f *os.File) (*os.File, error) {
	d, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		d.Close()
		return nil, err
	}
	if err := unix.Fstat(int(d.Fd()), &b); err != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		d.Close()
		return nil, fmt.Errorf("%s: reopened as another file", f.Name())
	}
	return d, nil
}

// startWriteback asks the kernel to start writing back f's first n
// bytes. Advisory: an error only means the final fsync does all the work.
// The range is the whole file so far: buffered writes need not be
// contiguous when most go around the page cache.
func startWriteback(f *os.File, n int64) {
	unix.SyncFileRange(int(f.Fd()), 0, n, unix.SYNC_FILE_RANGE_WRITE)
}
