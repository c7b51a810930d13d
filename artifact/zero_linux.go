package artifact

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// zeroRange zeroes a range without writing zeros: BLKZEROOUT on a
// device, a punched hole in a file.
func zeroRange(f *os.File, device bool, off, n int64) error {
	if device {
		r := [2]uint64{uint64(off), uint64(n)}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r))); e != 0 {
			return e
		}
		return nil
	}
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}
