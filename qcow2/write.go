package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Writer writes a qcow2 image of a virtual disk whose bytes are written
// in order, with zero clusters left unallocated. Data clusters go right
// after the header as they come; the tables go after the data on Close,
// and the header last.
type Writer struct {
	w       io.WriterAt
	size    int64   // virtual size
	pos     int64   // guest bytes passed so far
	buf     []byte  // the guest cluster being filled
	next    int64   // next free host cluster
	mapping []int64 // guest cluster -> host offset, 0 when unallocated
	err     error   // sticky
}

// NewWriter starts an image of size virtual bytes in w.
func NewWriter(w io.WriterAt, size int64) *Writer {
	return &Writer{w: w, size: size, buf: make([]byte, 0, ClusterSize), next: 1,
		mapping: make([]int64, ceilDiv(size, ClusterSize))}
}

// Write adds p to the virtual disk.
func (q *Writer) Write(p []byte) (int, error) {
	if q.err != nil {
		return 0, q.err
	}
	if q.pos+int64(len(p)) > q.size {
		q.err = fmt.Errorf("qcow2: write past the virtual size %d", q.size)
		return 0, q.err
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), ClusterSize-len(q.buf))
		q.buf = append(q.buf, p[:k]...)
		p = p[k:]
		q.pos += int64(k)
		if len(q.buf) == ClusterSize {
			q.flush()
		}
	}
	return n, q.err
}

// Skip adds n zero bytes without writing them.
func (q *Writer) Skip(n int64) error {
	if q.err != nil {
		return q.err
	}
	if q.pos+n > q.size {
		q.err = fmt.Errorf("qcow2: skip past the virtual size %d", q.size)
		return q.err
	}
	// Fill the current cluster, pass whole clusters, start the next.
	if len(q.buf) > 0 {
		k := min(n, int64(ClusterSize-len(q.buf)))
		q.buf = append(q.buf, make([]byte, k)...)
		q.pos, n = q.pos+k, n-k
		if len(q.buf) == ClusterSize {
			q.flush()
		}
	}
	whole := n / ClusterSize * ClusterSize
	q.pos, n = q.pos+whole, n-whole
	if n > 0 {
		q.buf = append(q.buf, make([]byte, n)...)
		q.pos += n
	}
	return q.err
}

// flush writes the buffered cluster unless it is all zeros.
func (q *Writer) flush() {
	guest := (q.pos - int64(len(q.buf))) / ClusterSize
	if !allZero(q.buf) {
		off := q.next * ClusterSize
		if _, err := q.w.WriteAt(q.buf, off); err != nil && q.err == nil {
			q.err = err
		}
		q.mapping[guest] = off
		q.next++
	}
	q.buf = q.buf[:0]
}

func allZero(b []byte) bool {
	return len(b) == 0 || b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1])
}

// Close writes the tables and the header. The virtual disk must have been
// written to its end.
func (q *Writer) Close() error {
	if q.err != nil {
		return q.err
	}
	if q.pos != q.size {
		return fmt.Errorf("qcow2: %d of %d virtual bytes written", q.pos, q.size)
	}
	if len(q.buf) > 0 {
		q.buf = append(q.buf, make([]byte, ClusterSize-len(q.buf))...)
		q.flushTail()
	}
	// L2 tables, for the ranges that hold data.
	l1Size := ceilDiv(int64(len(q.mapping)), l2Entries)
	l1 := make([]byte, l1Size*8)
	for i := int64(0); i < l1Size; i++ {
		lo, hi := i*l2Entries, min((i+1)*l2Entries, int64(len(q.mapping)))
		l2 := make([]byte, ClusterSize)
		used := false
		for g := lo; g < hi; g++ {
			if off := q.mapping[g]; off != 0 {
				be.PutUint64(l2[(g-lo)*8:], uint64(off)|flagCopied)
				used = true
			}
		}
		if !used {
			continue
		}
		off := q.alloc(1)
		q.writeAt(l2, off)
		be.PutUint64(l1[i*8:], uint64(off)|flagCopied)
	}
	l1Off := q.alloc(ceilDiv(int64(len(l1)), ClusterSize))
	q.writeAt(l1, l1Off)
	// Refcounts: every cluster up to here, and the refcount structures
	// themselves, which may need more blocks for their own counts.
	used := q.next
	var blocks, tableClusters int64
	for {
		total := used + blocks + tableClusters
		nb := ceilDiv(total, rcEntries)
		nt := ceilDiv(nb*8, ClusterSize)
		if nb == blocks && nt == tableClusters {
			break
		}
		blocks, tableClusters = nb, nt
	}
	total := used + blocks + tableClusters
	blocksOff := q.alloc(blocks)
	tableOff := q.alloc(tableClusters)
	table := make([]byte, tableClusters*ClusterSize)
	for b := int64(0); b < blocks; b++ {
		rb := make([]byte, ClusterSize)
		for c := b * rcEntries; c < min((b+1)*rcEntries, total); c++ {
			be.PutUint16(rb[(c-b*rcEntries)*2:], 1)
		}
		q.writeAt(rb, blocksOff+b*ClusterSize)
		be.PutUint64(table[b*8:], uint64(blocksOff+b*ClusterSize))
	}
	q.writeAt(table, tableOff)
	h := header{
		Magic: Magic, Version: Version,
		ClusterBits:           ClusterBits,
		Size:                  uint64(q.size),
		L1Size:                uint32(l1Size),
		L1TableOffset:         uint64(l1Off),
		RefcountTableOffset:   uint64(tableOff),
		RefcountTableClusters: uint32(tableClusters),
		RefcountOrder:         refcountOrder,
		HeaderLength:          headerLength,
	}
	var hb bytes.Buffer
	binary.Write(&hb, be, h)
	hb.Write(make([]byte, 8)) // end of the header extensions
	q.writeAt(hb.Bytes(), 0)
	return q.err
}

// flushTail writes the last, partial cluster padded with zeros.
func (q *Writer) flushTail() {
	guest := int64(len(q.mapping)) - 1
	if !allZero(q.buf) {
		off := q.next * ClusterSize
		q.writeAt(q.buf, off)
		q.mapping[guest] = off
		q.next++
	}
	q.buf = q.buf[:0]
}

// alloc reserves n host clusters and returns the offset of the first.
func (q *Writer) alloc(n int64) int64 {
	off := q.next * ClusterSize
	q.next += n
	return off
}

func (q *Writer) writeAt(b []byte, off int64) {
	if q.err != nil {
		return
	}
	if _, err := q.w.WriteAt(b, off); err != nil {
		q.err = err
	}
}

// FileSize is the size the image file has once Close returned.
func (q *Writer) FileSize() int64 { return q.next * ClusterSize }
