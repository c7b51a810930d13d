package overlays

import (
	"io"
	"os"
	"syscall"
)

// rawFile is a source file read with plain system calls. os.Open would
// also try to register the descriptor with the runtime's poller (three
// failing calls) and os.NewFile would ask for its flags, for every file,
// though a regular file needs neither; on trees of many small files, each
// read twice per build, that is a fifth of the work. Whoever opens one
// must close it: it has no finalizer.
//
// It also knows the size the file was listed with. On local file systems
// a read of a regular file comes back short only at the end of the file,
// so a short read that ends exactly at the listed size is taken as the
// end, and the read that would return nothing is not made: one call fewer
// per file, on every pass. A file that has grown shows it as a read that
// fills the buffer at the listed size, the caller asking for one byte
// more. Where short reads happen anywhere (some FUSE and network file
// systems), one that stops at the listed size hides growth after it; the
// bytes read are still what is hashed and written, so the image always
// agrees with its manifest.
type rawFile struct {
	fd   int
	path string
	size int64 // as listed; -1 if unknown
	off  int64
	eof  bool
}

// openRegular opens the source file at p, listed as size bytes (-1 if
// unknown), for reading.
func openRegular(p string, size int64) (*rawFile, error) {
	for {
		fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return &rawFile{fd: fd, path: p, size: size}, nil
	}
}

func (f *rawFile) Read(b []byte) (int, error) {
	if f.fd < 0 {
		return 0, &os.PathError{Op: "read", Path: f.path, Err: os.ErrClosed}
	}
	if len(b) == 0 {
		return 0, nil
	}
	if f.eof {
		return 0, io.EOF
	}
	for {
		n, err := syscall.Read(f.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.path, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		f.off += int64(n)
		f.eof = n < len(b) && f.off == f.size
		return n, nil
	}
}

func (f *rawFile) Close() error {
	if f.fd < 0 {
		return &os.PathError{Op: "close", Path: f.path, Err: os.ErrClosed}
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}
