package overlays

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/internetarchive/olimage/policy"
)

// rawFile is a source file read with plain system calls. os.Open would
// also try to register the descriptor with the runtime's poller (three
// failing calls) and os.NewFile would ask for its flags, for every file,
// though a regular file needs neither; on trees of many small files, each
// read twice per build, that is a fifth of the work. Hashing 2000 files of
// 100 to 4000 bytes: 71 ms against 102 ms through os.Open and a read loop
// (BenchmarkHashRaw, BenchmarkHashOS, means of ten alternating runs on 2
// shared cores; rawFile was faster in nine). Whoever opens one must close
// it: it has no finalizer.
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
	fd, err := retry(func() (int, error) { return syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0) })
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return &rawFile{fd: fd, path: p, size: size}, nil
}

func retry(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// dirRoot is the top of a directory source, held open so that its files
// are opened relative to it.
type dirRoot struct {
	path string
	fd   int
	mu   sync.Mutex
	hits map[string][]policy.Hit // what the content policy's detector found, by file; files without hits are not in it
}

// addHits records what the detector found in file rel as it was hashed.
func (d *dirRoot) addHits(rel string, hits []policy.Hit) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hits == nil {
		d.hits = map[string][]policy.Hit{}
	}
	d.hits[rel] = hits
}

// openDirRoot opens the directory at p, which must not be a symlink.
func openDirRoot(p string) (*dirRoot, error) {
	fd, err := retry(func() (int, error) {
		return syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return &dirRoot{path: p, fd: fd}, nil
}

func (d *dirRoot) close() error { return syscall.Close(d.fd) }

// openBelow is openBeneath; tests replace it to take the fallback.
var openBelow = openBeneath

// fileID is what identifies a file while it exists: its device and inode.
type fileID struct{ dev, ino uint64 }

// ErrChanged marks a source file that is no longer the one the walk
// listed: replaced by a symlink, a different file or something that is no
// file, between the listing and the read.
var ErrChanged = errors.New("replaced since it was listed")

// openListed opens file rel of directory source root, listed as size
// bytes with identity id. No symlink is followed on the way, in rel's
// directories or at its end (openat2 with RESOLVE_NO_SYMLINKS where the
// kernel has it, O_NOFOLLOW on the last element elsewhere), and O_NONBLOCK
// keeps a FIFO put in its place from blocking. What is opened must be the
// regular file the walk saw, the same device and inode: otherwise a file
// swapped for a link to /etc/shadow after the walk would put the host's
// secrets in the image.
func openListed(root *dirRoot, rel string, size int64, id fileID) (*rawFile, error) {
	p := root.path + string(os.PathSeparator) + rel
	const flags = syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	fd, err := retry(func() (int, error) { return openBelow(root.fd, rel, flags) })
	if err == syscall.ENOSYS || err == syscall.EPERM {
		// No openat2 here, or a seccomp filter refuses it (some container
		// runtimes answer EPERM): the identity check below still holds.
		fd, err = retry(func() (int, error) { return syscall.Open(p, flags, 0) })
	}
	switch {
	case err == syscall.ELOOP || err == syscall.EXDEV:
		return nil, fmt.Errorf("%s: %w: a symlink is now in its place or on its path", p, ErrChanged)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, fmt.Errorf("%s: %w: now not a regular file (mode %o)", p, ErrChanged, st.Mode)
	}
	if got := (fileID{uint64(st.Dev), uint64(st.Ino)}); got != id {
		syscall.Close(fd)
		return nil, fmt.Errorf("%s: %w: now another file (device %d inode %d, listed as device %d inode %d)", p, ErrChanged, got.dev, got.ino, id.dev, id.ino)
	}
	return &rawFile{fd: fd, path: p, size: size}, nil
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
