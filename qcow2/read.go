package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Reader reads the virtual disk of a qcow2 image.
type Reader struct {
	r    io.ReaderAt
	Size int64 // virtual size
	l1   []uint64
	file int64
}

// IsQcow2 reports whether b starts with the qcow2 magic.
func IsQcow2(b []byte) bool { return len(b) >= 4 && be.Uint32(b) == Magic }

// NewReader reads the header and L1 table of the image r, of fileSize
// bytes. Everything olimage does not write (backing files, encryption,
// compressed clusters, external data files, snapshots' tables) is
// refused with ErrFormat, as is any table pointing outside the file.
func NewReader(r io.ReaderAt, fileSize int64) (*Reader, error) {
	var h header
	b := make([]byte, binary.Size(h))
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	binary.Read(bytes.NewReader(b), be, &h)
	switch {
	case h.Magic != Magic:
		return nil, fmt.Errorf("%w: bad magic %#x", ErrFormat, h.Magic)
	case h.Version != 2 && h.Version != 3:
		return nil, fmt.Errorf("%w: version %d: want 2 or 3", ErrFormat, h.Version)
	case h.BackingFileOffset != 0:
		return nil, fmt.Errorf("%w: has a backing file; convert it first (qemu-img convert -O qcow2)", ErrFormat)
	case h.CryptMethod != 0:
		return nil, fmt.Errorf("%w: encrypted", ErrFormat)
	case h.ClusterBits < 9 || h.ClusterBits > 21:
		return nil, fmt.Errorf("%w: cluster_bits %d", ErrFormat, h.ClusterBits)
	case h.Version == 3 && h.IncompatibleFeatures&^1 != 0: // bit 0, dirty, only asks for a refcount rebuild
		return nil, fmt.Errorf("%w: incompatible features %#x", ErrFormat, h.IncompatibleFeatures)
	case h.Size > 1<<50:
		return nil, fmt.Errorf("%w: virtual size %d", ErrFormat, h.Size)
	}
	cs := int64(1) << h.ClusterBits
	need := ceilDiv(ceilDiv(int64(h.Size), cs), cs/8)
	if int64(h.L1Size) < need || int64(h.L1Size) > need+1<<20 {
		return nil, fmt.Errorf("%w: L1 table of %d entries for %d bytes", ErrFormat, h.L1Size, h.Size)
	}
	if h.L1TableOffset%uint64(cs) != 0 || int64(h.L1TableOffset)+int64(need)*8 > fileSize {
		return nil, fmt.Errorf("%w: L1 table at %d outside the file", ErrFormat, h.L1TableOffset)
	}
	raw := make([]byte, need*8)
	if _, err := r.ReadAt(raw, int64(h.L1TableOffset)); err != nil {
		return nil, fmt.Errorf("%w: L1 table: %v", ErrFormat, err)
	}
	q := &Reader{r: r, Size: int64(h.Size), l1: make([]uint64, need), file: fileSize}
	for i := range q.l1 {
		q.l1[i] = be.Uint64(raw[i*8:])
	}
	if h.ClusterBits != ClusterBits {
		return nil, fmt.Errorf("%w: %d-byte clusters: olimage reads %d", ErrFormat, cs, ClusterSize)
	}
	return q, nil
}

// ReadAt reads virtual bytes at off.
func (q *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("qcow2: negative offset")
	}
	n := 0
	for len(p) > 0 {
		if off >= q.Size {
			return n, io.EOF
		}
		k := min(int64(len(p)), ClusterSize-off%ClusterSize, q.Size-off)
		host, err := q.lookup(off / ClusterSize)
		if err != nil {
			return n, err
		}
		if host == 0 {
			clear(p[:k])
		} else if _, err := q.r.ReadAt(p[:k], host+off%ClusterSize); err != nil {
			return n, fmt.Errorf("%w: cluster at %d: %v", ErrFormat, host, err)
		}
		p, off, n = p[k:], off+k, n+int(k)
	}
	return n, nil
}

// lookup returns the host offset of guest cluster g, 0 for zeros.
func (q *Reader) lookup(g int64) (int64, error) {
	l1 := q.l1[g/l2Entries]
	l2Off := int64(l1 & offsetMask)
	if l2Off == 0 {
		return 0, nil
	}
	if l2Off%ClusterSize != 0 || l2Off+ClusterSize > q.file {
		return 0, fmt.Errorf("%w: L2 table at %d outside the file", ErrFormat, l2Off)
	}
	var b [8]byte
	if _, err := q.r.ReadAt(b[:], l2Off+(g%l2Entries)*8); err != nil {
		return 0, fmt.Errorf("%w: L2 table at %d: %v", ErrFormat, l2Off, err)
	}
	e := be.Uint64(b[:])
	switch {
	case e&flagCompressed != 0:
		return 0, fmt.Errorf("%w: compressed clusters: convert the image first (qemu-img convert -O qcow2)", ErrFormat)
	case e&flagZero != 0:
		return 0, nil
	}
	host := int64(e & offsetMask)
	if host%ClusterSize != 0 || host >= q.file {
		return 0, fmt.Errorf("%w: data cluster at %d outside the file", ErrFormat, host)
	}
	return host, nil
}
