package reader

import (
	"fmt"

	"github.com/internetarchive/olimage/ext4/format"
)

// extent maps n logical blocks of a file from logical to physical block
// phys. Uninitialised extents read as zeros.
type extent struct {
	logical uint64
	phys    uint64
	n       uint64
	uninit  bool
}

func (e extent) end() uint64 { return e.logical + e.n }

// maxLogical is one past the largest logical block an extent may map.
const maxLogical = 1 << 32

// extentHeader is a validated ext4_extent_header.
type extentHeader struct {
	entries, max, depth int
}

// parseExtentHeader validates the header of the extent tree node b (the
// 60 bytes of i_block or a whole block) and returns it.
func parseExtentHeader(b []byte) (extentHeader, error) {
	if len(b) < 12 {
		return extentHeader{}, fmt.Errorf("extent node of %d bytes", len(b))
	}
	if m := le.Uint16(b[0:]); m != format.ExtentMagic {
		return extentHeader{}, fmt.Errorf("bad extent header magic %#04x", m)
	}
	h := extentHeader{entries: int(le.Uint16(b[2:])), max: int(le.Uint16(b[4:])), depth: int(le.Uint16(b[6:]))}
	if h.max == 0 || 12+12*h.max > len(b) {
		return h, fmt.Errorf("extent node holds at most %d entries, header says %d", (len(b)-12)/12, h.max)
	}
	if h.entries > h.max {
		return h, fmt.Errorf("extent node has %d entries, more than its maximum %d", h.entries, h.max)
	}
	if h.depth > maxExtentDepth {
		return h, fmt.Errorf("extent tree depth %d exceeds %d", h.depth, maxExtentDepth)
	}
	return h, nil
}

// extentWalker reads one inode's extent tree.
type extentWalker struct {
	fs      *FS
	in      *inode
	ck      *checker // nil unless checking
	out     []extent
	next    uint64 // smallest logical block the next extent may start at
	visited map[uint64]bool
}

// walkExtents returns the extents of an inode with the extents flag, in
// logical order, checking the tree's shape and every block number.
func (fs *FS) walkExtents(in *inode, ck *checker) ([]extent, error) {
	w := &extentWalker{fs: fs, in: in, ck: ck}
	if err := w.node(in.block, -1, 0); err != nil {
		return nil, err
	}
	return w.out, nil
}

// node walks the node b at tree level level (-1 for the root), which
// must have depth wantDepth (any for the root).
func (w *extentWalker) node(b []byte, wantDepth int, blk uint64) error {
	fs := w.fs
	h, err := parseExtentHeader(b)
	if err != nil {
		if blk != 0 {
			return inodeCorrupt(w.in.ino, "extent block %d: %v", blk, err)
		}
		return inodeCorrupt(w.in.ino, "%v", err)
	}
	if wantDepth >= 0 && h.depth != wantDepth {
		return inodeCorrupt(w.in.ino, "extent block %d has depth %d, want %d", blk, h.depth, wantDepth)
	}
	if h.depth == 0 {
		for i := 0; i < h.entries; i++ {
			e := b[12+12*i:]
			lblk := uint64(le.Uint32(e[0:]))
			n := uint64(le.Uint16(e[4:]))
			phys := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			uninit := false
			if n > format.MaxExtentLen {
				n -= format.MaxExtentLen
				uninit = true
			}
			if n == 0 {
				return inodeCorrupt(w.in.ino, "extent %d at logical block %d has length 0", i, lblk)
			}
			if lblk < w.next {
				return inodeCorrupt(w.in.ino, "extent at logical block %d overlaps or precedes the previous one (ends at %d)", lblk, w.next)
			}
			if lblk+n > maxLogical {
				return inodeCorrupt(w.in.ino, "extent at logical block %d with %d blocks passes 2^32", lblk, n)
			}
			if phys <= fs.first || phys >= fs.blocks || n > fs.blocks-phys {
				return inodeCorrupt(w.in.ino, "extent at logical block %d maps blocks %d+%d, outside the file system (%d blocks)", lblk, phys, n, fs.blocks)
			}
			w.next = lblk + n
			if k := len(w.out); k > 0 && !uninit && !w.out[k-1].uninit && w.out[k-1].end() == lblk && w.out[k-1].phys+w.out[k-1].n == phys {
				w.out[k-1].n += n // merge physically and logically contiguous extents
			} else {
				w.out = append(w.out, extent{logical: lblk, phys: phys, n: n, uninit: uninit})
			}
			if w.ck != nil {
				w.ck.useBlocks(phys, n, w.in.ino)
			}
		}
		return nil
	}
	if w.visited == nil {
		w.visited = map[uint64]bool{}
	}
	// Copy the index entries: the child reads reuse the buffer.
	type idx struct{ lblk, child uint64 }
	kids := make([]idx, h.entries)
	var prev uint64
	for i := range kids {
		e := b[12+12*i:]
		kids[i] = idx{uint64(le.Uint32(e[0:])), uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))}
		if i > 0 && kids[i].lblk <= prev {
			return inodeCorrupt(w.in.ino, "extent index entries out of order (%d after %d)", kids[i].lblk, prev)
		}
		prev = kids[i].lblk
	}
	for _, k := range kids {
		if k.child <= fs.first || k.child >= fs.blocks {
			return inodeCorrupt(w.in.ino, "extent index points to block %d, outside the file system (%d blocks)", k.child, fs.blocks)
		}
		if w.visited[k.child] {
			return inodeCorrupt(w.in.ino, "extent tree visits block %d twice (loop or shared block)", k.child)
		}
		w.visited[k.child] = true
		buf := make([]byte, fs.bs)
		if err := fs.readBlock(buf, k.child); err != nil {
			return inodeCorrupt(w.in.ino, "extent block %d: %v", k.child, err)
		}
		if w.ck != nil {
			w.ck.useBlocks(k.child, 1, w.in.ino)
			w.ck.extentBlock(w.in, k.child, buf)
		}
		if err := w.node(buf, h.depth-1, k.child); err != nil {
			return err
		}
	}
	return nil
}

// extentTailOK reports whether the checksum after the last possible
// entry of extent block b matches, for an inode with checksum seed seed.
func extentTailOK(b []byte, seed uint32) (bool, error) {
	h, err := parseExtentHeader(b)
	if err != nil {
		return false, err
	}
	off := 12 + 12*h.max
	if off+4 > len(b) {
		return false, fmt.Errorf("no room for the checksum tail")
	}
	return le.Uint32(b[off:]) == format.Crc32c(seed, b[:off]), nil
}

// walkBlockMap returns the extents of an ext2/ext3-style inode whose
// i_block holds 12 direct, one indirect, one double and one triple
// indirect block pointer. Only logical blocks below limit are mapped.
func (fs *FS) walkBlockMap(in *inode, limit uint64, ck *checker) ([]extent, error) {
	w := &blockMapWalker{fs: fs, in: in, ck: ck, limit: limit, per: uint64(fs.bs / 4)}
	for i := 0; i < 12; i++ {
		if err := w.data(uint64(i), uint64(le.Uint32(in.block[4*i:]))); err != nil {
			return nil, err
		}
	}
	base := uint64(12)
	span := w.per
	for level := 1; level <= 3; level++ {
		ptr := uint64(le.Uint32(in.block[4*(11+level):]))
		if base >= limit {
			break
		}
		if ptr != 0 {
			if err := w.indirect(ptr, level, base); err != nil {
				return nil, err
			}
		}
		base += span
		span *= w.per
	}
	return w.out, nil
}

type blockMapWalker struct {
	fs      *FS
	in      *inode
	ck      *checker
	limit   uint64
	per     uint64 // pointers per block
	out     []extent
	visited map[uint64]bool
}

func (w *blockMapWalker) data(lblk, phys uint64) error {
	if phys == 0 || lblk >= w.limit {
		return nil
	}
	fs := w.fs
	if phys <= fs.first || phys >= fs.blocks {
		return inodeCorrupt(w.in.ino, "logical block %d maps to block %d, outside the file system (%d blocks)", lblk, phys, fs.blocks)
	}
	if w.ck != nil {
		w.ck.useBlocks(phys, 1, w.in.ino)
	}
	if k := len(w.out); k > 0 && w.out[k-1].end() == lblk && w.out[k-1].phys+w.out[k-1].n == phys {
		w.out[k-1].n++
		return nil
	}
	w.out = append(w.out, extent{logical: lblk, phys: phys, n: 1})
	return nil
}

// indirect walks the level-deep indirect block blk mapping logical blocks
// from base.
func (w *blockMapWalker) indirect(blk uint64, level int, base uint64) error {
	fs := w.fs
	if blk <= fs.first || blk >= fs.blocks {
		return inodeCorrupt(w.in.ino, "indirect block %d is outside the file system (%d blocks)", blk, fs.blocks)
	}
	if w.visited == nil {
		w.visited = map[uint64]bool{}
	}
	if w.visited[blk] {
		return inodeCorrupt(w.in.ino, "indirect block %d is used twice", blk)
	}
	w.visited[blk] = true
	if w.ck != nil {
		w.ck.useBlocks(blk, 1, w.in.ino)
	}
	b := make([]byte, fs.bs)
	if err := fs.readBlock(b, blk); err != nil {
		return inodeCorrupt(w.in.ino, "indirect block %d: %v", blk, err)
	}
	span := uint64(1)
	for i := 1; i < level; i++ {
		span *= w.per
	}
	for i := uint64(0); i < w.per; i++ {
		lblk := base + i*span
		if lblk >= w.limit {
			break
		}
		ptr := uint64(le.Uint32(b[4*i:]))
		if ptr == 0 {
			continue
		}
		var err error
		if level == 1 {
			err = w.data(lblk, ptr)
		} else {
			err = w.indirect(ptr, level-1, lblk)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// fileExtents returns the block mapping of a file, directory or slow
// symlink with data in blocks.
func (fs *FS) fileExtents(in *inode, ck *checker) ([]extent, error) {
	if in.extents() {
		return fs.walkExtents(in, ck)
	}
	limit := (in.size + uint64(fs.bs) - 1) / uint64(fs.bs)
	if in.ino == format.ResizeIno {
		limit = maxLogical
	}
	return fs.walkBlockMap(in, min(limit, maxLogical), ck)
}
