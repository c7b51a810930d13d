package reader

import (
	"bytes"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/internetarchive/olimage/ext4/format"
)

// Info is what the superblock says about a file system.
type Info struct {
	Label           string
	UUID            string // 8-4-4-4-12 hex, as blkid prints it
	BlockSize       int
	Blocks          uint64
	FreeBlocks      uint64
	ReservedBlocks  uint64
	Inodes          uint32
	FreeInodes      uint32
	InodeSize       int
	Groups          uint32
	BlocksPerGroup  uint32
	InodesPerGroup  uint32
	Features        []string // names as tune2fs and dumpe2fs print them
	Created         time.Time
	Mtime           time.Time // last mount
	Wtime           time.Time // last write
	HashSeed        string    // UUID form, as dumpe2fs prints it
	DefHashVersion  uint8
	JournalInode    uint32
	JournalSize     int64 // bytes, from the superblock's copy of the journal inode; 0 if it has none
	Clean           bool  // s_state has the clean bit and no error bit
	NeedsRecovery   bool  // the journal holds transactions to replay
	MetadataCsum    bool
	ChecksumSeed    uint32
	FirstDataBlock  uint64
	ReservedGDT     uint16
	LastMountedPath string
}

var compatNames = []struct {
	bit  format.CompatFeature
	name string
}{
	{format.CompatDirPrealloc, "dir_prealloc"},
	{format.CompatImagicInodes, "imagic_inodes"},
	{format.CompatHasJournal, "has_journal"},
	{format.CompatExtAttr, "ext_attr"},
	{format.CompatResizeInode, "resize_inode"},
	{format.CompatDirIndex, "dir_index"},
	{0x40, "lazy_bg"},
	{0x80, "snapshot_bitmap"},
	{0x100, "exclude_bitmap"},
	{format.CompatSparseSuper2, "sparse_super2"},
	{0x400, "fast_commit"},
	{0x800, "stable_inodes"},
	{0x1000, "orphan_file"},
}

var incompatNameList = []struct {
	bit  format.IncompatFeature
	name string
}{
	{format.IncompatCompression, "compression"},
	{format.IncompatFiletype, "filetype"},
	{format.IncompatRecover, "needs_recovery"},
	{format.IncompatJournalDev, "journal_dev"},
	{format.IncompatMetaBG, "meta_bg"},
	{format.IncompatExtents, "extent"},
	{format.Incompat64bit, "64bit"},
	{format.IncompatMMP, "mmp"},
	{format.IncompatFlexBG, "flex_bg"},
	{format.IncompatEAInode, "ea_inode"},
	{format.IncompatDirData, "dirdata"},
	{format.IncompatCsumSeed, "metadata_csum_seed"},
	{format.IncompatLargeDir, "large_dir"},
	{format.IncompatInlineData, "inline_data"},
	{format.IncompatEncrypt, "encrypt"},
	{incompatCasefold, "casefold"},
}

var roCompatNames = []struct {
	bit  format.RoCompatFeature
	name string
}{
	{format.RoCompatSparseSuper, "sparse_super"},
	{format.RoCompatLargeFile, "large_file"},
	{format.RoCompatBtreeDir, "btree_dir"},
	{format.RoCompatHugeFile, "huge_file"},
	{format.RoCompatGdtCsum, "uninit_bg"},
	{format.RoCompatDirNlink, "dir_nlink"},
	{format.RoCompatExtraIsize, "extra_isize"},
	{format.RoCompatQuota, "quota"},
	{format.RoCompatBigalloc, "bigalloc"},
	{format.RoCompatMetadataCsum, "metadata_csum"},
	{0x800, "replica"},
	{format.RoCompatReadonly, "read-only"},
	{format.RoCompatProject, "project"},
	{0x4000, "shared_blocks"},
	{0x8000, "verity"},
	{format.RoCompatOrphanFile, "orphan_present"},
}

// incompatNames names the bits of f, "FEATURE_I<n>" for unknown ones as
// e2fsprogs does.
func incompatNames(f format.IncompatFeature) string {
	var out []string
	for i := 0; i < 32; i++ {
		bit := format.IncompatFeature(1) << i
		if f&bit == 0 {
			continue
		}
		name := fmt.Sprintf("FEATURE_I%d", i)
		for _, n := range incompatNameList {
			if n.bit == bit {
				name = n.name
			}
		}
		out = append(out, name)
	}
	return strings.Join(out, " ")
}

// features lists the feature names in the order dumpe2fs prints them:
// compat, then incompat, then ro_compat, each by bit.
func (fs *FS) features() []string {
	var out []string
	c, ic, rc := uint32(fs.sb.FeatureCompat), uint32(fs.sb.FeatureIncompat), uint32(fs.sb.FeatureRoCompat)
	for c != 0 {
		bit := uint32(1) << bits.TrailingZeros32(c)
		c &^= bit
		name := fmt.Sprintf("FEATURE_C%d", bits.TrailingZeros32(bit))
		for _, n := range compatNames {
			if uint32(n.bit) == bit {
				name = n.name
			}
		}
		out = append(out, name)
	}
	if ic != 0 {
		out = append(out, strings.Fields(incompatNames(format.IncompatFeature(ic)))...)
	}
	for rc != 0 {
		bit := uint32(1) << bits.TrailingZeros32(rc)
		rc &^= bit
		name := fmt.Sprintf("FEATURE_R%d", bits.TrailingZeros32(bit))
		for _, n := range roCompatNames {
			if uint32(n.bit) == bit {
				name = n.name
			}
		}
		out = append(out, name)
	}
	return out
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func sbTime(lo uint32, hi uint8) time.Time {
	if lo == 0 && hi == 0 {
		return time.Time{}
	}
	return time.Unix(int64(lo)|int64(hi)<<32, 0).UTC()
}

// journalSize is the journal inode's i_size as the superblock keeps a
// copy of it (s_jnl_blocks[15] high, [16] low), without reading the inode.
func journalSize(sb *format.Superblock) int64 {
	if sb.JnlBackupType != format.JnlBackupBlocks || sb.JournalInum == 0 {
		return 0
	}
	return int64(sb.JnlBlocks[15])<<32 | int64(sb.JnlBlocks[16])
}

// Info describes the file system from its superblock.
func (fs *FS) Info() Info {
	sb := &fs.sb
	free := uint64(sb.FreeBlocksCountLo)
	res := uint64(sb.RBlocksCountLo)
	if fs.is64 {
		free |= uint64(sb.FreeBlocksCountHi) << 32
		res |= uint64(sb.RBlocksCountHi) << 32
	}
	dirty, err := fs.journalDirty()
	dirty = dirty || err != nil // an unreadable journal may hold anything
	return Info{
		Label:           sb.Label(),
		UUID:            format.FormatUUID(sb.UUID),
		BlockSize:       int(fs.bs),
		Blocks:          fs.blocks,
		FreeBlocks:      free,
		ReservedBlocks:  res,
		Inodes:          sb.InodesCount,
		FreeInodes:      sb.FreeInodesCount,
		InodeSize:       fs.isize,
		Groups:          fs.ngroups,
		BlocksPerGroup:  fs.bpg,
		InodesPerGroup:  fs.ipg,
		Features:        fs.features(),
		Created:         sbTime(sb.MkfsTime, sb.MkfsTimeHi),
		Mtime:           sbTime(sb.Mtime, sb.MtimeHi),
		Wtime:           sbTime(sb.Wtime, sb.WtimeHi),
		HashSeed:        format.FormatUUID(sb.HashSeed),
		DefHashVersion:  sb.DefHashVersion,
		JournalInode:    sb.JournalInum,
		JournalSize:     journalSize(sb),
		Clean:           sb.State&1 != 0 && sb.State&2 == 0,
		NeedsRecovery:   dirty,
		MetadataCsum:    fs.csum,
		ChecksumSeed:    fs.seed,
		FirstDataBlock:  fs.first,
		ReservedGDT:     sb.ReservedGdtBlocks,
		LastMountedPath: cstring(sb.LastMounted[:]),
	}
}
