// Package format holds the ext4 on-disk structures, constants, checksums
// and directory hashes, as plain Go types that marshal to their exact
// little-endian byte layout. It does no I/O and makes no layout decisions:
// it does not know where any structure goes or how a file system is
// planned; that is the writer's job (package ext4).
package format

import (
	"encoding/binary"
)

// Fixed geometry this package's users rely on.
const (
	BlockSize        = 4096          // the only block size olimage writes
	LogBlockSize     = 2             // BlockSize = 2^(10 + LogBlockSize)
	BlocksPerGroup   = BlockSize * 8 // one block bitmap block covers a group
	InodeSize        = 256           // bytes per on-disk inode
	GoodOldInodeSize = 128           // the fixed part of an inode before i_extra_isize
	ExtraIsize       = 32            // i_extra_isize of every inode with extra fields
	DescSize         = 64            // group descriptor size with the 64bit feature
	SuperblockOffset = 1024          // byte offset of the primary superblock
	SuperblockSize   = 1024          // bytes of a superblock
	FirstIno         = 11            // first inode number not reserved by ext4
	LogGroupsPerFlex = 4             // flex_bg groups 2^4 = 16 groups together
	GroupsPerFlex    = 1 << LogGroupsPerFlex
	MaxExtentLen     = 32768 // longest initialised extent, in blocks
	LinkMax          = 65000 // largest i_links_count; with dir_nlink a directory above it counts 1
	NameMax          = 255   // longest directory entry name
)

// Reserved inode numbers.
const (
	BadBlocksIno  = 1  // bad blocks list
	RootIno       = 2  // root directory
	ResizeIno     = 7  // reserved group descriptor blocks (resize_inode)
	JournalIno    = 8  // journal (has_journal)
	LostFoundIno  = 11 // lost+found as mke2fs makes it: the first ordinary inode
	UserQuotaIno  = 3  // user quota (unused by olimage)
	GroupQuotaIno = 4  // group quota (unused by olimage)
)

// Magic numbers.
const (
	SuperMagic   = 0xEF53     // s_magic
	ExtentMagic  = 0xF30A     // eh_magic
	XattrMagic   = 0xEA020000 // h_magic of an xattr block and of an in-inode xattr area
	JournalMagic = 0xC03B3998 // JBD2 h_magic (big-endian on disk)
)

// CompatFeature is a bit of s_feature_compat.
type CompatFeature uint32

// Compatible features.
const (
	CompatDirPrealloc  CompatFeature = 0x1
	CompatImagicInodes CompatFeature = 0x2
	CompatHasJournal   CompatFeature = 0x4
	CompatExtAttr      CompatFeature = 0x8
	CompatResizeInode  CompatFeature = 0x10
	CompatDirIndex     CompatFeature = 0x20
	CompatSparseSuper2 CompatFeature = 0x200
)

// IncompatFeature is a bit of s_feature_incompat.
type IncompatFeature uint32

// Incompatible features.
const (
	IncompatCompression IncompatFeature = 0x1
	IncompatFiletype    IncompatFeature = 0x2
	IncompatRecover     IncompatFeature = 0x4
	IncompatJournalDev  IncompatFeature = 0x8
	IncompatMetaBG      IncompatFeature = 0x10
	IncompatExtents     IncompatFeature = 0x40
	Incompat64bit       IncompatFeature = 0x80
	IncompatMMP         IncompatFeature = 0x100
	IncompatFlexBG      IncompatFeature = 0x200
	IncompatEAInode     IncompatFeature = 0x400
	IncompatDirData     IncompatFeature = 0x1000
	IncompatCsumSeed    IncompatFeature = 0x2000
	IncompatLargeDir    IncompatFeature = 0x4000
	IncompatInlineData  IncompatFeature = 0x8000
	IncompatEncrypt     IncompatFeature = 0x10000
)

// RoCompatFeature is a bit of s_feature_ro_compat.
type RoCompatFeature uint32

// Read-only compatible features.
const (
	RoCompatSparseSuper  RoCompatFeature = 0x1
	RoCompatLargeFile    RoCompatFeature = 0x2
	RoCompatBtreeDir     RoCompatFeature = 0x4
	RoCompatHugeFile     RoCompatFeature = 0x8
	RoCompatGdtCsum      RoCompatFeature = 0x10
	RoCompatDirNlink     RoCompatFeature = 0x20
	RoCompatExtraIsize   RoCompatFeature = 0x40
	RoCompatQuota        RoCompatFeature = 0x100
	RoCompatBigalloc     RoCompatFeature = 0x200
	RoCompatMetadataCsum RoCompatFeature = 0x400
	RoCompatReadonly     RoCompatFeature = 0x1000
	RoCompatProject      RoCompatFeature = 0x2000
	RoCompatOrphanFile   RoCompatFeature = 0x10000
)

// Superblock state, error policy, OS and revision values.
const (
	StateClean       = 1   // s_state: cleanly unmounted
	ErrorsContinue   = 1   // s_errors: keep going on errors
	OSLinux          = 0   // s_creator_os
	RevDynamic       = 1   // s_rev_level: dynamic inode sizes and features
	ChecksumCrc32c   = 1   // s_checksum_type
	JnlBackupBlocks  = 1   // s_jnl_backup_type: s_jnl_blocks holds the journal inode's i_block
	FlagSignedHash   = 0x1 // s_flags: directory hashes treat name bytes as signed char
	FlagUnsignedHash = 0x2 // s_flags: directory hashes treat name bytes as unsigned char
	DefmXattrUser    = 0x4 // s_default_mount_opts: user_xattr
	DefmACL          = 0x8 // s_default_mount_opts: acl
)

// Group descriptor flags (bg_flags).
const (
	BGInodeUninit = 0x1 // inode table and bitmap not initialised
	BGBlockUninit = 0x2 // block bitmap not initialised
	BGInodeZeroed = 0x4 // inode table is zeroed
)

// Inode mode file types (i_mode & 0xF000).
const (
	ModeFifo     = 0x1000
	ModeChar     = 0x2000
	ModeDir      = 0x4000
	ModeBlock    = 0x6000
	ModeRegular  = 0x8000
	ModeSymlink  = 0xA000
	ModeSocket   = 0xC000
	ModeTypeMask = 0xF000
)

// Inode flags (i_flags).
const (
	InodeIndexFl    = 0x1000   // directory has an htree index
	InodeHugeFileFl = 0x40000  // i_blocks is in file system blocks, not 512-byte sectors
	InodeExtentsFl  = 0x80000  // i_block holds an extent tree
	InodeEAInodeFl  = 0x200000 // inode holds a large xattr value
	InodeInlineFl   = 0x10000000
)

// Directory entry file types (ext4_dir_entry_2.file_type).
const (
	FtUnknown = 0
	FtRegular = 1
	FtDir     = 2
	FtChar    = 3
	FtBlock   = 4
	FtFifo    = 5
	FtSocket  = 6
	FtSymlink = 7
	FtDirCsum = 0xDE // file type of the checksum tail entry of a directory leaf block
)

// Directory hash versions (s_def_hash_version, dx_root_info.hash_version).
const (
	HashLegacy          = 0
	HashHalfMD4         = 1
	HashTea             = 2
	HashLegacyUnsigned  = 3
	HashHalfMD4Unsigned = 4
	HashTeaUnsigned     = 5
)

// sizeOf is binary.Size that panics on types it cannot size, so the
// constants below are checked when the package loads.
func sizeOf(v any) int {
	n := binary.Size(v)
	if n < 0 {
		panic("format: unsized type")
	}
	return n
}

var le = binary.LittleEndian

// BackupGroup reports whether group g holds a superblock and group
// descriptor backup under sparse_super: groups 0, 1 and powers of 3, 5 and 7.
func BackupGroup(g uint32) bool {
	if g <= 1 {
		return true
	}
	return isPower(g, 3) || isPower(g, 5) || isPower(g, 7)
}

func isPower(n, b uint32) bool {
	for n%b == 0 {
		n /= b
	}
	return n == 1
}

// EncodeTime splits t (seconds since the Unix epoch) into the 32-bit
// seconds field and the extra field of an inode timestamp: two epoch bits
// extend the range to 2446, the other 30 bits are nanoseconds (always 0 here).
func EncodeTime(t int64) (lo uint32, extra uint32) {
	lo = uint32(t)
	epoch := (t - int64(int32(lo))) >> 32
	return lo, uint32(epoch) & 3
}
