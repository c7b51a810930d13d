package ext4

import (
	"encoding/binary"

	"github.com/internetarchive/olimage/ext4/format"
)

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// iblock fills in.Block for n: fast symlink text, the resize inode's
// indirect map, or the root of the extent tree.
func (l *Layout) iblock(in *format.Inode, n *node) {
	switch {
	case n.ino == format.ResizeIno:
		binary.LittleEndian.PutUint32(in.Block[4*13:], uint32(l.dind)) // i_block[EXT2_DIND_BLOCK]
	case n.fastSymlink():
		copy(in.Block[:], n.entry.Target)
	default:
		tree := n.tree()
		depth := len(tree)
		h := format.ExtentHeader{Magic: format.ExtentMagic, Max: format.ExtentsInInode, Depth: uint16(depth)}
		if depth == 0 {
			h.Entries = uint16(n.extents())
			for i := range n.extents() {
				e := n.extent(i)
				putExtent(in.Block[12+12*i:], &e)
			}
		} else {
			top := tree[depth-1]
			h.Entries = uint16(len(top))
			span := pow(format.ExtentsInBlock, depth)
			for i, blk := range top {
				x := format.ExtentIdx{Block: n.more.ext[i*span].lblk}
				x.SetLeaf(blk)
				x.Marshal(in.Block[12+12*i:])
			}
		}
		h.Marshal(in.Block[:])
	}
}

func pow(b, e int) int {
	r := 1
	for range e {
		r *= b
	}
	return r
}

func putExtent(b []byte, e *extent) {
	x := format.Extent{Block: e.lblk, Len: uint16(e.n)} // e.n is at most 32768, which ext4 reads as 32768 initialised blocks
	x.SetStart(e.pblk)
	x.Marshal(b)
}

// extentBlock writes block i of level lvl of n's extent tree into b.
func (l *Layout) extentBlock(b []byte, n *node, lvl, i int) {
	clear(b[:BlockSize])
	h := format.ExtentHeader{Magic: format.ExtentMagic, Max: format.ExtentsInBlock, Depth: uint16(lvl)}
	if lvl == 0 {
		first := i * format.ExtentsInBlock
		ext := n.more.ext[first:min(len(n.more.ext), first+format.ExtentsInBlock)]
		h.Entries = uint16(len(ext))
		for k := range ext {
			putExtent(b[12+12*k:], &ext[k])
		}
	} else {
		first := i * format.ExtentsInBlock
		kids := n.more.tree[lvl-1][first:min(len(n.more.tree[lvl-1]), first+format.ExtentsInBlock)]
		h.Entries = uint16(len(kids))
		span := pow(format.ExtentsInBlock, lvl)
		for k, blk := range kids {
			x := format.ExtentIdx{Block: n.more.ext[(first+k)*span].lblk}
			x.SetLeaf(blk)
			x.Marshal(b[12+12*k:])
		}
	}
	h.Marshal(b)
	format.SetExtentBlockChecksum(b, format.InodeCsumSeed(l.csumSeed, n.ino, 0))
}

// resizeNode is inode 7 as mke2fs makes it: a regular file whose
// double-indirect block maps the reserved GDT blocks.
func (l *Layout) resizeNode() *node {
	g := l.geo
	backups := uint64(0)
	for grp := uint32(1); grp < g.groups; grp++ {
		if format.BackupGroup(grp) {
			backups++
		}
	}
	// i_size covers every block a double-indirect map can reach.
	size := uint64(addrPerBlock*addrPerBlock+addrPerBlock+12) * BlockSize
	n := &node{
		ino:   format.ResizeIno,
		mode:  format.ModeRegular | 0o600, // as mke2fs makes it
		links: 1,                          // reserved inodes have no name but count one link
		more: &nodeMore{
			size: size,
			runs: []run{{0, uint32(1 + uint64(g.rsv)*(1+backups))}}, // for i_blocks only: never allocated
		},
	}
	return n
}

// inode writes the on-disk inode ino into b (InodeSize bytes).
func (l *Layout) inode(b []byte, ino uint32) {
	b = b[:format.InodeSize]
	clear(b)
	var n *node
	if int(ino) < len(l.nodes) {
		n = l.nodes[ino]
	}
	if ino == format.ResizeIno {
		n = l.resizeNode()
	}
	if n == nil {
		if ino >= format.FirstIno {
			return // free inode: zeros
		}
		// Reserved inodes as mke2fs leaves them: no extra fields, the bad
		// blocks inode with its times, all checksummed.
		if ino == format.BadBlocksIno {
			t := uint32(l.opts.Time)
			binary.LittleEndian.PutUint32(b[0x08:], t) // i_atime
			binary.LittleEndian.PutUint32(b[0x0C:], t) // i_ctime
			binary.LittleEndian.PutUint32(b[0x10:], t) // i_mtime
		}
		format.SetInodeChecksum(b, l.csumSeed, ino)
		return
	}
	in := format.Inode{
		Mode:       n.mode,
		LinksCount: uint16(n.links),
		Flags:      n.flags(),
		ExtraIsize: format.ExtraIsize,
	}
	switch {
	case n.entry != nil:
		in.SetOwner(n.entry.UID, n.entry.GID)
	case ino == format.RootIno:
		in.SetOwner(l.opts.RootUID, l.opts.RootGID)
	}
	in.SetSize(n.size())
	in.SetTimes(l.opts.Time)
	in.SetBlocks(n.totalBlocks())
	in.SetFileACL(n.xblock())
	l.iblock(&in, n)
	in.Marshal(b)
	if err := format.PutIbodyXattrs(b, n.ibody()); err != nil {
		panic(err) // Plan made sure they fit
	}
	format.SetInodeChecksum(b, l.csumSeed, ino)
}

// journalSuperblock writes the first block of an empty JBD2 v2 journal of
// blocks blocks, as mke2fs makes it, but with the journal features the
// kernel sets when it mounts a 64bit, metadata_csum file system. With
// mke2fs's none, the kernel sets them in its copy of the block, even on a
// read-only mount, and whoever reads the mounted device (olimage verify
// /dev/vdb) sees a block that differs from the one built: the image's
// dm-verity root hash and the signature over it no longer match.
func (l *Layout) journalSuperblock(b []byte, blocks uint32) {
	clear(b[:BlockSize])
	j := format.JournalSuperblock{
		Header:    format.JournalHeader{Magic: format.JournalMagic, BlockType: format.JournalSuperblockV2},
		BlockSize: BlockSize,
		MaxLen:    blocks,
		First:     1, // the log starts right after this block
		Sequence:  1, // first transaction ID
		Start:     0, // empty: nothing to replay
		UUID:      l.opts.UUID,
		NrUsers:   1, // this file system
		// As the kernel's ext4_set_journal_csum_feature_set sets them.
		FeatureIncompat: format.JournalIncompat64Bit | format.JournalIncompatCsumV3,
		ChecksumType:    format.JournalCsumCrc32c,
	}
	j.Marshal(b)
	format.SetJournalChecksum(b)
}

// reservedGDTBlock writes reserved GDT block j of group grp: in group 0 it
// lists where its backups are (what the resize inode's indirect map
// points at); backups are zeros.
func (l *Layout) reservedGDTBlock(b []byte, grp uint32, j uint32) {
	clear(b[:BlockSize])
	if grp != 0 {
		return
	}
	g := l.geo
	k := 0
	for bg := uint32(1); bg < g.groups; bg++ {
		if format.BackupGroup(bg) {
			binary.LittleEndian.PutUint32(b[4*k:], uint32(uint64(bg)*bpg+1+uint64(g.gdt)+uint64(j)))
			k++
		}
	}
}

// dindBlock writes the resize inode's double-indirect block: slot
// (gdt+j) mod 1024 holds primary reserved GDT block j.
func (l *Layout) dindBlock(b []byte) {
	clear(b[:BlockSize])
	g := l.geo
	for j := range g.rsv {
		slot := (g.gdt + j) % addrPerBlock
		binary.LittleEndian.PutUint32(b[4*slot:], 1+g.gdt+j)
	}
}
