package ext4

import (
	"sort"

	"github.com/internetarchive/olimage/ext4/format"
)

const (
	bpg           = format.BlocksPerGroup
	inodesPerBlk  = format.BlockSize / format.InodeSize
	descPerBlock  = format.BlockSize / format.DescSize
	maxIPG        = format.BlockSize * 8 // one inode bitmap block per group
	addrPerBlock  = format.BlockSize / 4
	maxInodeCount = 1<<32 - 1
)

// brange is a range of blocks [start, end).
type brange struct{ start, end uint64 }

// geometry is everything about an image that follows from its block count
// and inode count: groups, metadata sizes and where the fixed metadata is.
type geometry struct {
	blocks  uint64
	groups  uint32
	ipg     uint32 // inodes per group
	itb     uint32 // inode table blocks per group
	gdt     uint32 // group descriptor blocks
	rsv     uint32 // reserved GDT blocks (resize_inode), 0 on small file systems
	journal uint32 // journal blocks; 0 for none

	bbm, ibm, itab []uint64 // per group: block bitmap, inode bitmap, inode table
	fixed          []brange // sorted, disjoint: superblocks, GDTs, bitmaps, inode tables
}

// groupBlocks is the number of blocks in group g.
func (g *geometry) groupBlocks(grp uint32) uint64 {
	if grp == g.groups-1 {
		return g.blocks - uint64(grp)*bpg
	}
	return bpg
}

// backupBlocks is the size of the superblock+GDT+reserved GDT area at the
// start of a group that has a backup.
func (g *geometry) backupBlocks() uint64 { return 1 + uint64(g.gdt) + uint64(g.rsv) }

// inodes is the file system's inode count.
func (g *geometry) inodes() uint64 { return uint64(g.groups) * uint64(g.ipg) }

// geometryError says why a block count cannot hold a file system.
type geometryError struct {
	tooSmall  bool   // the last (only) group cannot hold its own metadata
	maxInodes uint64 // set when the inodes do not fit
}

// ceilDiv is ceil(a/b) for positive b.
func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// reservedGDT is mke2fs's choice: enough descriptor blocks to grow the file
// system 1024 times, or to 2^32 blocks, at most one indirect block's worth.
func reservedGDT(blocks uint64, gdt uint32) uint32 {
	max := uint64(0xFFFFFFFF)
	if blocks < max/1024 {
		max = blocks * 1024
	}
	rsvGroups := ceilDiv(max, bpg)
	want := ceilDiv(rsvGroups, descPerBlock)
	if want <= uint64(gdt) {
		return 0
	}
	return uint32(min(want-uint64(gdt), addrPerBlock))
}

// newGeometry lays out a file system of the given blocks with at least
// minInodes inodes. It returns a shorter block count when mke2fs would
// drop a last group too small for its metadata; the caller decides.
func newGeometry(blocks, minInodes uint64, journal bool) (*geometry, *geometryError) {
	g := &geometry{blocks: blocks}
	g.groups = uint32(ceilDiv(blocks, bpg))
	if g.groups == 0 {
		return nil, &geometryError{tooSmall: true}
	}
	maxInodes := min(uint64(g.groups)*maxIPG, maxInodeCount/inodesPerBlk*inodesPerBlk)
	if minInodes > maxInodes {
		return nil, &geometryError{maxInodes: maxInodes}
	}
	ipg := ceilDiv(ceilDiv(max(minInodes, format.FirstIno+1), uint64(g.groups)), inodesPerBlk) * inodesPerBlk
	g.ipg = uint32(min(ipg, maxIPG))
	g.itb = g.ipg / inodesPerBlk
	g.gdt = uint32(ceilDiv(uint64(g.groups), descPerBlock))
	g.rsv = reservedGDT(blocks, g.gdt)
	if journal {
		g.journal = max(format.DefaultJournalBlocks(blocks), format.JournalMinBlocks)
	}

	// mke2fs's rule for the last group: it must hold its own metadata and
	// 50 more blocks, or it is dropped.
	last := g.groupBlocks(g.groups - 1)
	overhead := 2 + uint64(g.itb)
	if format.BackupGroup(g.groups - 1) {
		overhead += g.backupBlocks()
	}
	if last < bpg && last < overhead+50 {
		return nil, &geometryError{tooSmall: true}
	}
	if 3+uint64(g.itb)+uint64(g.rsv) > bpg {
		return nil, &geometryError{maxInodes: uint64(g.groups) * maxIPG}
	}

	// Superblock backups first; flex group metadata fits around them.
	for grp := uint32(0); grp < g.groups; grp++ {
		if format.BackupGroup(grp) {
			s := uint64(grp) * bpg
			g.fixed = append(g.fixed, brange{s, s + g.backupBlocks()})
		}
	}
	backups := len(g.fixed)
	g.bbm = make([]uint64, g.groups)
	g.ibm = make([]uint64, g.groups)
	g.itab = make([]uint64, g.groups)
	for first := uint32(0); first < g.groups; first += format.GroupsPerFlex {
		n := min(format.GroupsPerFlex, g.groups-first)
		// Place this flex group's bitmaps and tables in order from the
		// start of its first group, each inode table contiguous.
		pos := uint64(first) * bpg
		take := func(k uint64) (uint64, bool) {
			for {
				moved := false
				for _, r := range g.fixed[:backups] {
					if pos < r.end && pos+k > r.start {
						pos, moved = r.end, true
					}
				}
				if !moved {
					break
				}
			}
			if pos+k > blocks {
				return 0, false
			}
			s := pos
			pos += k
			return s, true
		}
		var ok bool
		for i := range n {
			if g.bbm[first+i], ok = take(1); !ok {
				return nil, &geometryError{tooSmall: true}
			}
		}
		for i := range n {
			if g.ibm[first+i], ok = take(1); !ok {
				return nil, &geometryError{tooSmall: true}
			}
		}
		for i := range n {
			if g.itab[first+i], ok = take(uint64(g.itb)); !ok {
				return nil, &geometryError{tooSmall: true}
			}
		}
	}
	for grp := range g.groups {
		g.fixed = append(g.fixed, brange{g.bbm[grp], g.bbm[grp] + 1}, brange{g.ibm[grp], g.ibm[grp] + 1},
			brange{g.itab[grp], g.itab[grp] + uint64(g.itb)})
	}
	g.fixed = mergeRanges(g.fixed)
	return g, nil
}

// mergeRanges sorts ranges and joins the ones that touch.
func mergeRanges(rs []brange) []brange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].start < rs[j].start })
	out := rs[:0]
	for _, r := range rs {
		if r.start == r.end {
			continue
		}
		if n := len(out); n > 0 && r.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, r.end)
			continue
		}
		out = append(out, r)
	}
	return out
}

// allocator hands out blocks in increasing order, skipping fixed metadata.
type allocator struct {
	g     *geometry
	pos   uint64
	fi    int      // first fixed range that ends after pos
	used  []brange // every range handed out, merged
	short uint64   // blocks asked for past the end of the file system
}

func newAllocator(g *geometry) *allocator { return &allocator{g: g} }

// alloc takes n blocks and calls fn with each contiguous piece. Blocks
// that do not fit are counted in a.short and fn is not called for them.
func (a *allocator) alloc(n uint64, fn func(start, n uint64)) {
	for n > 0 {
		for a.fi < len(a.g.fixed) && a.g.fixed[a.fi].end <= a.pos {
			a.fi++
		}
		if a.fi < len(a.g.fixed) && a.g.fixed[a.fi].start <= a.pos {
			a.pos = a.g.fixed[a.fi].end
			continue
		}
		limit := a.g.blocks
		if a.fi < len(a.g.fixed) {
			limit = a.g.fixed[a.fi].start
		}
		if a.pos >= a.g.blocks {
			a.short += n
			return
		}
		k := min(n, limit-a.pos)
		if fn != nil {
			fn(a.pos, k)
		}
		if u := len(a.used); u > 0 && a.used[u-1].end == a.pos {
			a.used[u-1].end += k
		} else {
			a.used = append(a.used, brange{a.pos, a.pos + k})
		}
		a.pos += k
		n -= k
	}
}
