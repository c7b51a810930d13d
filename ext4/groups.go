package ext4

import (
	"sort"

	"github.com/internetarchive/olimage/ext4/format"
)

// blockBitmap fills b (one block) with the block bitmap of group grp and
// returns the number of used blocks in the group. Bits past the end of
// the file system are set, as ext4 requires.
func (l *Layout) blockBitmap(b []byte, grp uint32) uint64 {
	clear(b[:BlockSize])
	start := uint64(grp) * bpg
	end := start + l.geo.groupBlocks(grp)
	i := sort.Search(len(l.used), func(i int) bool { return l.used[i].end > start })
	var used uint64
	for ; i < len(l.used) && l.used[i].start < end; i++ {
		s, e := max(l.used[i].start, start)-start, min(l.used[i].end, end)-start
		setBits(b, s, e)
		used += e - s
	}
	setBits(b, end-start, bpg)
	return used
}

// setBits sets bits [s, e) of b.
func setBits(b []byte, s, e uint64) {
	for s < e && s%8 != 0 {
		b[s/8] |= 1 << (s % 8)
		s++
	}
	for ; s+8 <= e; s += 8 {
		b[s/8] = 0xFF
	}
	for ; s < e; s++ {
		b[s/8] |= 1 << (s % 8)
	}
}

// inodesUsed is the number of used inodes in group grp: inodes are used
// from 1 to maxIno without gaps.
func (l *Layout) inodesUsed(grp uint32) uint32 {
	first := uint64(grp) * uint64(l.geo.ipg)
	if uint64(l.maxIno) <= first {
		return 0
	}
	return uint32(min(uint64(l.maxIno)-first, uint64(l.geo.ipg)))
}

// inodeBitmap fills b (one block) with group grp's inode bitmap; bits past
// the group's inodes are set.
func (l *Layout) inodeBitmap(b []byte, grp uint32) {
	clear(b[:BlockSize])
	setBits(b, 0, uint64(l.inodesUsed(grp)))
	setBits(b, uint64(l.geo.ipg), BlockSize*8)
}

// describeGroups fills in the group descriptors.
func (l *Layout) describeGroups() {
	g := l.geo
	dirs := make([]uint32, g.groups)
	for _, n := range l.nodes {
		if n != nil && n.isDir() {
			dirs[(n.ino-1)/g.ipg]++
		}
	}
	l.gds = make([]format.GroupDesc, g.groups)
	bb := make([]byte, BlockSize)
	ib := make([]byte, BlockSize)
	for grp := range g.groups {
		d := &l.gds[grp]
		used := l.blockBitmap(bb, grp)
		l.inodeBitmap(ib, grp)
		iu := l.inodesUsed(grp)
		d.SetLocations(g.bbm[grp], g.ibm[grp], g.itab[grp])
		d.SetCounts(uint32(g.groupBlocks(grp)-used), g.ipg-iu, dirs[grp], g.ipg-iu)
		d.Flags = format.BGInodeZeroed // the writer zeroes every inode table
		d.SetBitmapChecksums(l.csumSeed, bb[:bpg/8], ib[:g.ipg/8])
	}
}

// superblock builds the superblock as stored in group grp.
func (l *Layout) superblock(grp uint32) *format.Superblock {
	g, o := l.geo, &l.opts
	tlo, thi := uint32(o.Time), uint8(o.Time>>32)
	s := &format.Superblock{
		InodesCount:       uint32(g.inodes()),
		BlocksCountLo:     uint32(g.blocks),
		BlocksCountHi:     uint32(g.blocks >> 32),
		RBlocksCountLo:    uint32(l.rblocks),
		RBlocksCountHi:    uint32(l.rblocks >> 32),
		FreeBlocksCountLo: uint32(l.free),
		FreeBlocksCountHi: uint32(l.free >> 32),
		FreeInodesCount:   uint32(g.inodes() - uint64(l.maxIno)),
		FirstDataBlock:    0,                   // 0 for block sizes above 1 KiB
		LogBlockSize:      format.LogBlockSize, // 2^(10+2) = 4096
		LogClusterSize:    format.LogBlockSize, // no bigalloc: cluster = block
		BlocksPerGroup:    bpg,                 // one bitmap block's worth
		ClustersPerGroup:  bpg,                 // no bigalloc
		InodesPerGroup:    g.ipg,
		Wtime:             tlo,
		WtimeHi:           thi,
		MaxMntCount:       0xFFFF, // -1: no mount-count checks
		Magic:             format.SuperMagic,
		State:             format.StateClean,
		Errors:            format.ErrorsContinue,
		Lastcheck:         tlo,
		LastcheckHi:       thi,
		MkfsTime:          tlo,
		MkfsTimeHi:        thi,
		CreatorOS:         format.OSLinux,
		RevLevel:          format.RevDynamic,
		FirstIno:          format.FirstIno,
		InodeSize:         format.InodeSize,
		BlockGroupNr:      uint16(grp),
		FeatureCompat:     format.CompatExtAttr | format.CompatDirIndex | format.CompatResizeInode,
		FeatureIncompat:   format.IncompatFiletype | format.IncompatExtents | format.Incompat64bit | format.IncompatFlexBG,
		FeatureRoCompat: format.RoCompatSparseSuper | format.RoCompatLargeFile | format.RoCompatHugeFile |
			format.RoCompatDirNlink | format.RoCompatExtraIsize | format.RoCompatMetadataCsum,
		UUID:             o.UUID,
		HashSeed:         o.HashSeed,
		DefHashVersion:   dirHashVersion,
		DescSize:         format.DescSize,
		DefaultMountOpts: format.DefmXattrUser | format.DefmACL, // as mke2fs.conf's default_mntopts
		MinExtraIsize:    format.ExtraIsize,
		WantExtraIsize:   format.ExtraIsize,
		Flags:            dirHashFlags,
		LogGroupsPerFlex: format.LogGroupsPerFlex,
		ChecksumType:     format.ChecksumCrc32c,
	}
	copy(s.VolumeName[:], o.Label)
	s.ReservedGdtBlocks = uint16(g.rsv) // may be 0 on small file systems, as with mke2fs
	if jn := l.nodes[format.JournalIno]; jn != nil {
		s.FeatureCompat |= format.CompatHasJournal
		s.JournalInum = format.JournalIno
		s.JnlBackupType = format.JnlBackupBlocks
		var in format.Inode
		l.iblock(&in, jn)
		for i := range 15 {
			s.JnlBlocks[i] = le32(in.Block[4*i:])
		}
		s.JnlBlocks[15] = uint32(jn.size() >> 32)
		s.JnlBlocks[16] = uint32(jn.size())
	}
	return s
}
