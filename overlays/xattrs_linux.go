package overlays

import (
	"bytes"
	"errors"

	"golang.org/x/sys/unix"
)

// listXattrs lists the names of p's extended attributes, not following a
// symlink. A file system without xattrs has none.
func listXattrs(p string) ([]string, error) {
	// Most files have no xattrs: a buffer on the stack, not 4 KiB of heap
	// for each of a million files.
	var small [256]byte
	buf := small[:]
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil || n == 0 {
			return nil, err
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n:n], nil
	}
}
