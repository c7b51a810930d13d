// Package reader reads ext4 file systems, whoever made them (olimage,
// mke2fs -d, the kernel, ext2 and ext3 tools), into the tree model, and
// checks their structure: checksums, bitmaps against actual use, free and
// link counts.
//
// It reads extent-mapped and block-mapped (ext2/ext3) files, holes and
// unwritten extents (as zeros), inline data, fast and slow symlinks,
// linear and htree directories, xattrs in the inode, in a block and in
// their own inode (ea_inode), POSIX ACLs (returned in getxattr's format),
// 1 to 64 KiB blocks, with or without 64bit, flex_bg, meta_bg and
// metadata_csum. It refuses, with ErrUnsupported, what would need more
// (compression, encryption, bigalloc, dirdata, a separate journal
// device). Reads do not verify checksums (Check does), so a damaged image
// can still be inspected; the journal is not replayed.
//
// It reads through an io.ReaderAt and never trusts the image: every size
// and block number is checked against the image before it is used, so a
// corrupt or hostile image gives an error, not a panic, a hang or an
// allocation bigger than the image. It does not write or repair images
// and does not compare content with a manifest (callers digest what it
// reads).
package reader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/internetarchive/olimage/ext4/format"
)

var le = binary.LittleEndian

// Sentinels for errors.Is.
var (
	// ErrNotExt4 means the bytes are not an ext4 (or ext2/ext3) file
	// system: no superblock magic, or too small to hold one.
	ErrNotExt4 = errors.New("not an ext4 file system")
	// ErrCorrupt marks every *CorruptError.
	ErrCorrupt = errors.New("corrupt ext4 file system")
	// ErrUnsupported means a valid file system uses a feature this
	// package does not read (for example encryption or compression).
	ErrUnsupported = errors.New("unsupported ext4 feature")
	// ErrNotFound is returned by Stat, Open and ReadDir for a missing path.
	ErrNotFound = errors.New("no such file or directory")
)

// CorruptError describes an inconsistency found while reading: which
// structure, which inode (0 when none), and what is wrong.
type CorruptError struct {
	Structure string // "superblock", "group 3 descriptor", "inode 12", "directory inode 12 block 5"
	Inode     uint32
	Msg       string
}

func (e *CorruptError) Error() string {
	return e.Structure + ": " + e.Msg
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(structure string, format string, args ...any) error {
	return &CorruptError{Structure: structure, Msg: fmt.Sprintf(format, args...)}
}

func inodeCorrupt(ino uint32, format string, args ...any) error {
	return &CorruptError{Structure: fmt.Sprintf("inode %d", ino), Inode: ino, Msg: fmt.Sprintf(format, args...)}
}

// Limits on what one inode may claim, far above what any real file system
// uses and low enough that a hostile image cannot make the reader work or
// allocate without bound.
const (
	maxExtentDepth = 5       // the kernel's limit
	maxSymlinkLen  = 1 << 16 // PATH_MAX is 4096; allow slack, refuse absurd
	maxXattrValue  = 1 << 20 // per value; ext4 allows at most 64 KiB without ea_inode
	maxXattrTotal  = 4 << 20 // per inode
)

// group is a decoded group descriptor.
type group struct {
	blockBitmap, inodeBitmap, inodeTable uint64
	freeBlocks, freeInodes, usedDirs     uint32
	itableUnused                         uint32
	flags                                uint16
	checksum                             uint16
	blockBitmapCsum, inodeBitmapCsum     uint32
	raw                                  []byte // descSize bytes as on disk
}

// FS is an open ext4 file system. Its methods are safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64

	sb      format.Superblock
	sbRaw   []byte
	bs      int64 // block size in bytes
	blocks  uint64
	ngroups uint32
	ipg     uint32 // inodes per group
	bpg     uint32 // blocks per group
	inodes  uint32
	isize   int    // inode size
	dsize   int    // group descriptor size
	itb     uint64 // inode table blocks per group
	first   uint64 // first data block
	csum    bool   // metadata_csum
	gdtCsum bool   // uninit_bg (gdt_csum) without metadata_csum
	seed    uint32 // metadata checksum seed
	is64    bool
	groups  []group
	gdtBlk  []uint64 // blocks holding the primary group descriptors, in order

	cache itableCache
}

// Open reads and validates the superblock and group descriptors of the
// file system in the first size bytes of r. It checks that every
// structure they locate lies inside the image; checksums are left to
// Check, so a damaged but readable image can still be inspected.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	fs := &FS{r: r, size: size}
	if size < 2048 {
		return nil, fmt.Errorf("%w: image is %d bytes, too small for a superblock", ErrNotExt4, size)
	}
	fs.sbRaw = make([]byte, format.SuperblockSize)
	if err := fs.readAt(fs.sbRaw, format.SuperblockOffset); err != nil {
		return nil, fmt.Errorf("superblock: %w", err)
	}
	sb, err := format.ParseSuperblock(fs.sbRaw)
	if errors.Is(err, format.ErrNoSuperblock) {
		return nil, fmt.Errorf("%w: no superblock magic at byte 1080", ErrNotExt4)
	}
	if err != nil {
		return nil, corrupt("superblock", "%v", err)
	}
	fs.sb = *sb
	if err := fs.checkSuperblock(); err != nil {
		return nil, err
	}
	if err := fs.readGroups(); err != nil {
		return nil, err
	}
	fs.cache.init(fs)
	return fs, nil
}

// Features this package reads. Anything else in s_feature_incompat is
// refused, since it changes how the file system must be read.
const knownIncompat = format.IncompatFiletype | format.IncompatRecover | format.IncompatMetaBG |
	format.IncompatExtents | format.Incompat64bit | format.IncompatMMP | format.IncompatFlexBG |
	format.IncompatEAInode | format.IncompatCsumSeed | format.IncompatLargeDir |
	format.IncompatInlineData | incompatCasefold

const incompatCasefold format.IncompatFeature = 0x20000

// checkSuperblock validates the geometry the superblock declares.
func (fs *FS) checkSuperblock() error {
	sb := &fs.sb
	bad := func(f string, args ...any) error { return corrupt("superblock", f, args...) }
	if sb.LogBlockSize > 6 {
		return bad("block size 2^(10+%d) is out of range (1 KiB to 64 KiB)", sb.LogBlockSize)
	}
	fs.bs = 1024 << sb.LogBlockSize
	if unk := sb.FeatureIncompat &^ knownIncompat; unk != 0 {
		return fmt.Errorf("superblock: %w: incompatible features %s", ErrUnsupported, incompatNames(unk))
	}
	fs.is64 = sb.FeatureIncompat&format.Incompat64bit != 0
	fs.blocks = uint64(sb.BlocksCountLo)
	if fs.is64 {
		fs.blocks = sb.BlocksCount()
	}
	if fs.blocks == 0 {
		return bad("block count is 0")
	}
	if fs.blocks > uint64(fs.size)/uint64(fs.bs) {
		return bad("file system has %d blocks of %d bytes (%d bytes), image is only %d bytes (truncated?)",
			fs.blocks, fs.bs, fs.blocks*uint64(fs.bs), fs.size)
	}
	fs.first = uint64(sb.FirstDataBlock)
	if fs.first > 1 || (fs.bs == 1024) != (fs.first == 1) && sb.FeatureRoCompat&format.RoCompatBigalloc == 0 {
		return bad("first data block %d does not match block size %d", fs.first, fs.bs)
	}
	if fs.first >= fs.blocks {
		return bad("first data block %d is past the end (%d blocks)", fs.first, fs.blocks)
	}
	fs.bpg = sb.BlocksPerGroup
	if sb.FeatureRoCompat&format.RoCompatBigalloc != 0 {
		return fmt.Errorf("superblock: %w: bigalloc", ErrUnsupported)
	}
	if fs.bpg == 0 || fs.bpg > uint32(8*fs.bs) || fs.bpg%8 != 0 {
		return bad("%d blocks per group (want a multiple of 8 up to %d)", fs.bpg, 8*fs.bs)
	}
	ng := (fs.blocks - fs.first + uint64(fs.bpg) - 1) / uint64(fs.bpg)
	if ng == 0 || ng > 1<<32-1 {
		return bad("%d block groups", ng)
	}
	fs.ngroups = uint32(ng)
	fs.ipg = sb.InodesPerGroup
	if fs.ipg == 0 || fs.ipg > uint32(8*fs.bs) || fs.ipg%8 != 0 {
		return bad("%d inodes per group (want a multiple of 8 up to %d)", fs.ipg, 8*fs.bs)
	}
	if uint64(sb.InodesCount) != uint64(fs.ipg)*ng {
		return bad("inode count %d is not %d groups of %d inodes", sb.InodesCount, ng, fs.ipg)
	}
	fs.inodes = sb.InodesCount
	fs.isize = format.GoodOldInodeSize
	firstIno := uint32(format.FirstIno)
	if sb.RevLevel > 0 {
		fs.isize = int(sb.InodeSize)
		firstIno = sb.FirstIno
	}
	if fs.isize < format.GoodOldInodeSize || int64(fs.isize) > fs.bs || fs.isize&(fs.isize-1) != 0 {
		return bad("inode size %d (want a power of 2 from 128 to the block size)", fs.isize)
	}
	if firstIno < 3 || firstIno > fs.inodes {
		return bad("first inode %d out of range", firstIno)
	}
	fs.itb = (uint64(fs.ipg)*uint64(fs.isize) + uint64(fs.bs) - 1) / uint64(fs.bs)
	fs.dsize = 32
	if fs.is64 {
		fs.dsize = int(sb.DescSize)
		if fs.dsize < 64 || fs.dsize > 1024 || fs.dsize&(fs.dsize-1) != 0 {
			return bad("group descriptor size %d (want a power of 2 from 64 to 1024)", fs.dsize)
		}
	}
	fs.csum = sb.FeatureRoCompat&format.RoCompatMetadataCsum != 0
	fs.gdtCsum = !fs.csum && sb.FeatureRoCompat&format.RoCompatGdtCsum != 0
	if fs.csum {
		if sb.ChecksumType != format.ChecksumCrc32c {
			return bad("checksum type %d (want 1, crc32c)", sb.ChecksumType)
		}
		fs.seed = sb.CsumSeed()
	}
	if sb.FeatureIncompat&format.IncompatMetaBG != 0 && uint64(sb.FirstMetaBg) > ng {
		return bad("first meta_bg %d beyond %d groups", sb.FirstMetaBg, ng)
	}
	return nil
}

// descPerBlock is how many group descriptors one block holds.
func (fs *FS) descPerBlock() uint64 { return uint64(fs.bs) / uint64(fs.dsize) }

// gdtBlocks lists the blocks of the primary group descriptor table.
func (fs *FS) gdtBlocks() []uint64 {
	dpb := fs.descPerBlock()
	n := (uint64(fs.ngroups) + dpb - 1) / dpb
	out := make([]uint64, 0, n)
	metaBG := fs.sb.FeatureIncompat&format.IncompatMetaBG != 0
	for i := uint64(0); i < n; i++ {
		if !metaBG || i < uint64(fs.sb.FirstMetaBg) {
			out = append(out, fs.first+1+i)
			continue
		}
		// With meta_bg, descriptor block i lives in the first group of
		// meta group i (after that group's superblock backup, if any).
		g := i * dpb
		b := fs.groupStart(uint32(g))
		if fs.hasSuper(uint32(g)) {
			b++
		}
		out = append(out, b)
	}
	return out
}

// groupStart is the first block of group g.
func (fs *FS) groupStart(g uint32) uint64 { return fs.first + uint64(g)*uint64(fs.bpg) }

// groupBlocks is the number of blocks in group g (the last may be short).
func (fs *FS) groupBlocks(g uint32) uint64 {
	s := fs.groupStart(g)
	return min(uint64(fs.bpg), fs.blocks-s)
}

// hasSuper reports whether group g holds a superblock copy.
func (fs *FS) hasSuper(g uint32) bool {
	if g == 0 {
		return true
	}
	if fs.sb.FeatureCompat&format.CompatSparseSuper2 != 0 {
		return g == fs.sb.BackupBgs[0] || g == fs.sb.BackupBgs[1]
	}
	if fs.sb.FeatureRoCompat&format.RoCompatSparseSuper == 0 {
		return true
	}
	return format.BackupGroup(g)
}

// readGroups reads and validates the group descriptors.
func (fs *FS) readGroups() error {
	fs.gdtBlk = fs.gdtBlocks()
	for i, b := range fs.gdtBlk {
		if b >= fs.blocks {
			return corrupt("group descriptors", "descriptor block %d is block %d, past the end (%d blocks)", i, b, fs.blocks)
		}
	}
	fs.groups = make([]group, fs.ngroups)
	dpb := fs.descPerBlock()
	buf := make([]byte, fs.bs)
	raw := make([]byte, int(fs.ngroups)*fs.dsize)
	for i, b := range fs.gdtBlk {
		if err := fs.readBlock(buf, b); err != nil {
			return fmt.Errorf("group descriptors: %w", err)
		}
		start := uint64(i) * dpb
		n := min(dpb, uint64(fs.ngroups)-start)
		copy(raw[start*uint64(fs.dsize):], buf[:n*uint64(fs.dsize)])
	}
	for g := range fs.groups {
		d := raw[g*fs.dsize : (g+1)*fs.dsize : (g+1)*fs.dsize]
		gr := &fs.groups[g]
		gr.raw = d
		gr.blockBitmap = uint64(le.Uint32(d[0:]))
		gr.inodeBitmap = uint64(le.Uint32(d[4:]))
		gr.inodeTable = uint64(le.Uint32(d[8:]))
		gr.freeBlocks = uint32(le.Uint16(d[12:]))
		gr.freeInodes = uint32(le.Uint16(d[14:]))
		gr.usedDirs = uint32(le.Uint16(d[16:]))
		gr.flags = le.Uint16(d[18:])
		gr.blockBitmapCsum = uint32(le.Uint16(d[24:]))
		gr.inodeBitmapCsum = uint32(le.Uint16(d[26:]))
		gr.itableUnused = uint32(le.Uint16(d[28:]))
		gr.checksum = le.Uint16(d[30:])
		if fs.dsize >= 64 {
			gr.blockBitmap |= uint64(le.Uint32(d[32:])) << 32
			gr.inodeBitmap |= uint64(le.Uint32(d[36:])) << 32
			gr.inodeTable |= uint64(le.Uint32(d[40:])) << 32
			gr.freeBlocks |= uint32(le.Uint16(d[44:])) << 16
			gr.freeInodes |= uint32(le.Uint16(d[46:])) << 16
			gr.usedDirs |= uint32(le.Uint16(d[48:])) << 16
			gr.itableUnused |= uint32(le.Uint16(d[50:])) << 16
			gr.blockBitmapCsum |= uint32(le.Uint16(d[56:])) << 16
			gr.inodeBitmapCsum |= uint32(le.Uint16(d[58:])) << 16
		}
		s := fmt.Sprintf("group %d descriptor", g)
		if gr.blockBitmap < fs.first || gr.blockBitmap >= fs.blocks {
			return corrupt(s, "block bitmap at block %d, outside the file system (%d blocks)", gr.blockBitmap, fs.blocks)
		}
		if gr.inodeBitmap < fs.first || gr.inodeBitmap >= fs.blocks {
			return corrupt(s, "inode bitmap at block %d, outside the file system (%d blocks)", gr.inodeBitmap, fs.blocks)
		}
		if gr.inodeTable < fs.first || gr.inodeTable >= fs.blocks || fs.blocks-gr.inodeTable < fs.itb {
			return corrupt(s, "inode table at blocks %d+%d, outside the file system (%d blocks)", gr.inodeTable, fs.itb, fs.blocks)
		}
		if gr.itableUnused > fs.ipg {
			gr.itableUnused = fs.ipg // reported by Check; reading stays safe
		}
	}
	return nil
}

// readAt reads len(p) bytes at off, failing on anything outside the image.
func (fs *FS) readAt(p []byte, off int64) error {
	if off < 0 || off > fs.size || int64(len(p)) > fs.size-off {
		return fmt.Errorf("read of %d bytes at %d is outside the image (%d bytes)", len(p), off, fs.size)
	}
	n, err := fs.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read at %d: %w", off, err)
}

// readBlock reads block b (len(p) bytes, a multiple of the block size).
func (fs *FS) readBlock(p []byte, b uint64) error {
	if b >= fs.blocks || uint64(len(p))/uint64(fs.bs) > fs.blocks-b {
		return fmt.Errorf("block %d is outside the file system (%d blocks)", b, fs.blocks)
	}
	return fs.readAt(p, int64(b)*fs.bs)
}
