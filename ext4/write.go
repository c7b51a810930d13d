package ext4

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"sync/atomic"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/internal/par"
)

type itemKind uint8

const (
	itSuper   itemKind = iota // superblock and GDT of group a
	itRsvGDT                  // reserved GDT blocks of group a
	itBBitmap                 // block bitmap of group a
	itIBitmap                 // inode bitmap of group a
	itITable                  // inode table of group a
	itDind                    // resize inode's double-indirect block
	itXattr                   // xattr block of inode a
	itData                    // extent b of inode a
	itTree                    // extent tree block: inode a, level b, index c
)

// item is a run of blocks the writer produces in one go.
type item struct {
	start   uint64
	n       uint64
	kind    itemKind
	a, b, c uint32
}

// items lists everything WriteTo writes, in block order.
func (l *Layout) items() []item {
	g := l.geo
	// Sized first: a million files are a million items, and growing the
	// slice by appending held up to twice that at once.
	k := 1 + 5*int(g.groups)
	for _, n := range l.nodes {
		if n != nil {
			k += 1 + n.extents()
			for _, blks := range n.tree() {
				k += len(blks)
			}
		}
	}
	its := make([]item, 0, k)
	for grp := range g.groups {
		if format.BackupGroup(grp) {
			s := uint64(grp) * bpg
			its = append(its, item{start: s, n: 1 + uint64(g.gdt), kind: itSuper, a: grp})
			if g.rsv > 0 {
				its = append(its, item{start: s + 1 + uint64(g.gdt), n: uint64(g.rsv), kind: itRsvGDT, a: grp})
			}
		}
		its = append(its,
			item{start: g.bbm[grp], n: 1, kind: itBBitmap, a: grp},
			item{start: g.ibm[grp], n: 1, kind: itIBitmap, a: grp},
			item{start: g.itab[grp], n: uint64(g.itb), kind: itITable, a: grp})
	}
	if l.dind != 0 {
		its = append(its, item{start: l.dind, n: 1, kind: itDind})
	}
	for _, n := range l.nodes {
		if n == nil {
			continue
		}
		if xb := n.xblock(); xb != 0 {
			its = append(its, item{start: xb, n: 1, kind: itXattr, a: n.ino})
		}
		for i := range n.extents() {
			e := n.extent(i)
			its = append(its, item{start: e.pblk, n: uint64(e.n), kind: itData, a: n.ino, b: uint32(i)})
		}
		for lvl, blks := range n.tree() {
			for i, blk := range blks {
				its = append(its, item{start: blk, n: 1, kind: itTree, a: n.ino, b: uint32(lvl), c: uint32(i)})
			}
		}
	}
	slices.SortStableFunc(its, func(a, b item) int { return cmp.Compare(a.start, b.start) })
	return its
}

// writer is the state of one WriteTo.
type writer struct {
	l       *Layout
	s       *sink
	scratch []byte
	// The regular file whose content is being read.
	cur *node
	r   io.ReadCloser
	off uint64    // bytes of cur's content consumed
	h   hash.Hash // what confirms cur's content: sha or crc
	sha hash.Hash
	crc hash.Hash32
	sum []byte

	stop *atomic.Bool // set when the other side of WriteTo has failed
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes the image to w, from byte 0 to Size, in increasing
// order. When w is a Skipper, or an io.Seeker that can seek, zero blocks
// are skipped rather than written, so w must read as zeros where nothing
// was written (a new or truncated file). File content is read through
// Entry.Content and must still have the tree entry's size and sha256, or
// its CRC-32C when the entry carries one (HasCheck); an entry with neither
// is checked for size only. Otherwise WriteTo
// fails with an error that names the path and wraps ErrContentChanged.
func (l *Layout) WriteTo(w io.Writer) (int64, error) {
	return l.WriteToHashing(w, nil)
}

// WriteToHashing is WriteTo that also writes every byte of the image to h,
// zeros included, so that h ends with the digest of the whole image; runs
// of skipped zeros go to WriteZeros instead when h is a ZeroWriter. It
// hashes the buffers the image is written from, on a goroutine of its own,
// which costs no copy and overlaps with reading content and writing.
func (l *Layout) WriteToHashing(w io.Writer, h io.Writer) (int64, error) {
	wr := newWriter(l, newSink(w, h))
	// Files with no data blocks (all holes) are only checked, not
	// written: that happens beside the writing, so reading a large empty
	// file does not hold up the output. Whichever side fails first stops
	// the other.
	var writeFailed, checkFailed atomic.Bool
	check := newWriter(l, nil)
	check.stop = &writeFailed
	wr.stop = &checkFailed
	checked := par.Beside(func() error {
		err := check.verifyAll(l.blockless())
		checkFailed.Store(err != nil)
		return err
	})
	err := wr.run()
	wr.close()
	writeFailed.Store(err != nil)
	if cerr := checked(); err == nil || errors.Is(err, errStopped) {
		err = cerr
	}
	if cerr := wr.s.close(err == nil); err == nil {
		err = cerr
	}
	return wr.s.total, err
}

// errStopped ends one side of WriteTo when the other has failed; the
// other's error is the one returned.
var errStopped = errors.New("stopped: the other side of the write failed")

// stopped reports whether the other side of WriteTo has failed.
func (wr *writer) stopped() bool { return wr.stop != nil && wr.stop.Load() }

// newWriter makes a writer into s; with s nil it can only check content.
func newWriter(l *Layout, s *sink) *writer {
	return &writer{l: l, s: s, scratch: make([]byte, 256<<10), sha: sha256.New(), crc: crc32.New(castagnoli)}
}

func (wr *writer) close() {
	if wr.r != nil {
		wr.r.Close()
		wr.r = nil
	}
}

// verifyAll checks the content of nodes.
func (wr *writer) verifyAll(nodes []*node) error {
	defer wr.close()
	for _, n := range nodes {
		if wr.stopped() {
			return errStopped
		}
		if err := wr.open(n); err != nil {
			return err
		}
		if err := wr.finishFile(); err != nil {
			return err
		}
	}
	return nil
}

// blockless lists the regular files with no data blocks (empty, or all
// holes), in inode order: their content is checked all the same.
func (l *Layout) blockless() []*node {
	var out []*node
	for _, n := range l.nodes {
		if n != nil && n.entry != nil && n.ftype() == format.FtRegular && n.extents() == 0 && n.entry.Content != nil {
			out = append(out, n)
		}
	}
	return out
}

func (wr *writer) run() error {
	l, s := wr.l, wr.s
	var pos uint64
	for _, it := range l.items() {
		if it.start > pos {
			s.zero(int64(it.start-pos) * BlockSize)
			pos = it.start
		}
		if err := wr.emit(&it); err != nil {
			return err
		}
		if wr.stopped() {
			return errStopped
		}
		pos = max(pos, it.start+it.n)
		if err := s.failed(); err != nil {
			return err
		}
	}
	s.zero(l.size - int64(pos)*BlockSize)
	return nil
}

func (wr *writer) emit(it *item) error {
	l, s, g := wr.l, wr.s, wr.l.geo
	switch it.kind {
	case itSuper:
		b := s.block()
		clear(b)
		off := 0
		if it.a == 0 {
			off = format.SuperblockOffset
		}
		l.superblock(it.a).Marshal(b[off:])
		for k := range g.gdt {
			b := s.block()
			clear(b)
			for i := range descPerBlock {
				grp := k*descPerBlock + uint32(i)
				if grp >= g.groups {
					break
				}
				l.gds[grp].Marshal(b[i*format.DescSize:], grp, l.csumSeed)
			}
		}
	case itRsvGDT:
		for j := range g.rsv {
			l.reservedGDTBlock(s.block(), it.a, j)
		}
	case itBBitmap:
		l.blockBitmap(s.block(), it.a)
	case itIBitmap:
		l.inodeBitmap(s.block(), it.a)
	case itITable:
		first := uint64(it.a) * uint64(g.ipg)
		for k := uint64(0); k < uint64(g.itb); k++ {
			ino := first + k*inodesPerBlk + 1
			if ino > uint64(l.maxIno) {
				s.zero(int64(uint64(g.itb)-k) * BlockSize)
				break
			}
			b := s.block()
			for i := range uint64(inodesPerBlk) {
				l.inode(b[i*format.InodeSize:], uint32(ino+i))
			}
		}
	case itDind:
		l.dindBlock(s.block())
	case itXattr:
		n := l.nodes[it.a]
		if err := format.PutXattrBlock(s.block(), n.xblock(), l.csumSeed, n.blockXattrs()); err != nil {
			return fmt.Errorf("%s: %w", n.entry.Path(), err)
		}
	case itTree:
		l.extentBlock(s.block(), l.nodes[it.a], int(it.b), int(it.c))
	case itData:
		n := l.nodes[it.a]
		e := n.extent(int(it.b))
		switch {
		case n.dir() != nil:
			seed := format.InodeCsumSeed(l.csumSeed, n.ino, 0)
			for k := range e.n {
				n.more.dir.block(s.block(), n, e.lblk+k, seed)
			}
		case n.ftype() == format.FtSymlink:
			b := s.block()
			clear(b)
			copy(b, n.entry.Target)
		case n.ino == format.JournalIno:
			k := uint64(e.n)
			if e.lblk == 0 {
				l.journalSuperblock(s.block(), uint32(n.size()/BlockSize))
				k--
			}
			s.zero(int64(k) * BlockSize)
		default:
			return wr.data(n, &e, int(it.b) == n.extents()-1)
		}
	}
	return nil
}

// open starts reading n's content.
func (wr *writer) open(n *node) error {
	if wr.r != nil {
		wr.r.Close()
		wr.r = nil
	}
	r, err := n.entry.Content.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", n.entry.Path(), err)
	}
	wr.cur, wr.r, wr.off = n, r, 0
	// A tree that carries a CRC-32C check is confirmed with it: the
	// SHA-256 was computed from the same bytes when the tree was read, and
	// hashing them again would double the CPU a build spends on content.
	wr.h = wr.sha
	if n.entry.HasCheck {
		wr.h = wr.crc
	}
	wr.h.Reset()
	return nil
}

// changed is the error for content that no longer matches its entry.
func (wr *writer) changed(msg string, args ...any) error {
	where := wr.cur.entry.Path()
	// Name the source too when the content can say what it is (a file).
	if s, ok := wr.cur.entry.Content.(fmt.Stringer); ok {
		where += " (from " + s.String() + ")"
	}
	return fmt.Errorf("%s: %s: %w", where, fmt.Sprintf(msg, args...), ErrContentChanged)
}

// readErr turns a short read into a content-changed error.
func (wr *writer) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return wr.changed("content is shorter than %d bytes", wr.cur.size())
	}
	return fmt.Errorf("%s: %w", wr.cur.entry.Path(), err)
}

// skipZeros consumes content up to byte end, which Plan found to be zero.
func (wr *writer) skipZeros(end uint64) error {
	for wr.off < end {
		if wr.stopped() {
			return errStopped // a large hole can take a while to read
		}
		k := int(min(end-wr.off, uint64(len(wr.scratch))))
		b := wr.scratch[:k]
		if _, err := io.ReadFull(wr.r, b); err != nil {
			return wr.readErr(err)
		}
		if !isZero(b) {
			return wr.changed("a hole found by planning holds data now")
		}
		wr.h.Write(b)
		wr.off += uint64(k)
	}
	return nil
}

func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), BlockSize)
		if !bytes.Equal(b[:k], zeroBlock[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// data writes extent e of regular file n from its content.
func (wr *writer) data(n *node, e *extent, last bool) error {
	if wr.cur != n || wr.r == nil {
		if err := wr.open(n); err != nil {
			return err
		}
	}
	start := uint64(e.lblk) * BlockSize
	if err := wr.skipZeros(start); err != nil {
		return err
	}
	size := n.size()
	want := min(uint64(e.n)*BlockSize, size-start) // the last block may be partial
	if (want+BlockSize-1)/BlockSize != uint64(e.n) {
		return fmt.Errorf("%s: internal error: extent beyond the end of the file", n.entry.Path())
	}
	for want > 0 {
		if wr.stopped() {
			return errStopped
		}
		b := wr.s.space(int(min(want, sinkBuf)))
		k := min(uint64(len(b)), want)
		if wr.off+k == size && k < uint64(len(b)) {
			// The file's last bytes: ask for one more, so the read that
			// ends the file comes back short and the source can tell it
			// is at the end without another call (finishFile's).
			if got, err := io.ReadAtLeast(wr.r, b[:k+1], int(k)); err != nil {
				return wr.readErr(err)
			} else if uint64(got) > k {
				return wr.changed("content is longer than %d bytes", size)
			}
		} else if _, err := io.ReadFull(wr.r, b[:k]); err != nil {
			return wr.readErr(err)
		}
		wr.h.Write(b[:k])
		wr.off += k
		want -= k
		used := (k + BlockSize - 1) &^ (BlockSize - 1)
		clear(b[k:used]) // zero the tail of the file's last block
		wr.s.commit(int(used))
	}
	if last {
		return wr.finishFile()
	}
	return nil
}

// finishFile checks the rest of the current file is zero, that it ends
// at its size and that its digest matches, then closes it.
func (wr *writer) finishFile() error {
	n := wr.cur
	if err := wr.skipZeros(n.size()); err != nil {
		return err
	}
	var one [1]byte
	for {
		k, err := wr.r.Read(one[:])
		if k > 0 {
			return wr.changed("content is longer than %d bytes", n.size())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", n.entry.Path(), err)
		}
	}
	if n.entry.HasCheck {
		if got := wr.crc.Sum32(); got != n.entry.Check {
			return wr.changed("crc32c is %08x, the tree's content had %08x", got, n.entry.Check)
		}
	} else if d := n.entry.Digest; !d.IsZero() {
		wr.sum = wr.h.Sum(wr.sum[:0])
		if !bytes.Equal(wr.sum, d[:]) {
			return wr.changed("sha256 is %x, tree says %s", wr.sum, d)
		}
	}
	err := wr.r.Close()
	wr.r, wr.cur = nil, nil
	if err != nil {
		return fmt.Errorf("%s: %w", n.entry.Path(), err)
	}
	return nil
}
