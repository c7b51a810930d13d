// Package ext4 plans and writes deterministic ext4 images from a tree.
//
// Plan turns a tree.Tree and Options into a Layout: inode numbers (in tree
// order), block allocation, group descriptors and the image size, before
// any byte is written, so a tree that does not fit fails early with a
// typed error. Layout.WriteTo then streams every block of the image in
// increasing order, reading file content as it goes and checking it
// against the tree's sizes and digests; it never holds the image in
// memory and can skip zero runs on sinks that support it.
//
// The image has the features Debian's mke2fs gives ext4 (has_journal,
// ext_attr, resize_inode, dir_index, filetype, extent, 64bit, flex_bg,
// sparse_super, large_file, huge_file, dir_nlink, extra_isize,
// metadata_csum), 4 KiB blocks and 256-byte inodes. Every timestamp is
// Options.Time, so the same tree and options give the same bytes.
//
// Layout, in block order: group 0's superblock, descriptors and reserved
// descriptor blocks, then each flex group's bitmaps and inode tables in
// its first group (as mke2fs packs them), then the resize inode's
// indirect block, the journal, and every inode's blocks in inode order
// (xattr block, data, extent tree blocks), skipping the superblock
// backups of groups 1, 3^n, 5^n and 7^n. Inode 11 is lost+found (four
// empty blocks, as mke2fs makes it); tree entries follow from 12. A
// directory that fits in one block is linear; a bigger one gets an htree
// (half_md4, the superblock's hash seed, one dx_node level when the root
// cannot point at every leaf), with leaves filled completely.
//
// Holes: Plan leaves the all-zero blocks of regular files of at least
// Options.SparseMin bytes unallocated, reading the file to find them
// unless its entry lists them already; smaller files are stored dense.
// WriteTo checks that every hole still reads as zero and that the digest
// matches, so content that changes in between is an error.
//
// The package does not read images and does not decide the image's
// label, UUID, seed or size policy: callers pass them in.
package ext4

import (
	"errors"
	"fmt"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/tree"
)

// BlockSize is the block size of every image this package writes.
const BlockSize = format.BlockSize

// Options are the parameters of an image that do not come from the tree.
type Options struct {
	Label    string   // volume label, at most 16 bytes
	UUID     [16]byte // file system UUID; also seeds every metadata checksum
	HashSeed [16]byte // htree directory hash seed; all zeros selects ext4's default
	Time     int64    // every timestamp in the image, seconds since the Unix epoch

	// Size is the image size in bytes, a multiple of BlockSize. 0 sizes
	// the image to the tree plus headroom.
	Size int64
	// Headroom is the free space to leave when Size is 0, in bytes.
	Headroom int64
	// HeadroomPercent is the free space to leave when Size is 0, as a
	// percentage of the blocks the tree itself needs. The larger of
	// Headroom and HeadroomPercent wins.
	HeadroomPercent float64
	// ReservedPercent is the share of blocks reserved for root
	// (mke2fs -m); 0 reserves none. Auto sizing leaves headroom on top.
	ReservedPercent float64

	// InodeHeadroom is how many free inodes to leave beyond those the
	// tree uses.
	InodeHeadroom int64
	// BytesPerInode sets a minimum inode count of one per this many bytes
	// of image, as mke2fs -i does; 0 means 16384, negative means no minimum.
	BytesPerInode int64

	Journal bool // give the file system a journal (inode 8) sized as mke2fs would

	RootMode uint32 // permission bits of the root directory; 0 means 0755
	RootUID  uint32
	RootGID  uint32

	// SparseMin is the smallest regular file Plan reads to find all-zero
	// blocks, which become holes; 0 means 64 KiB, negative means never.
	// Smaller files are stored dense, so planning reads no small file.
	SparseMin int64

	// BlockSize must be 0 or 4096.
	BlockSize int
}

const (
	defaultBytesPerInode = 16384
	defaultSparseMin     = tree.SparseMin
	defaultRootMode      = 0o755
)

// NoSpaceError is returned by Plan when the tree does not fit in
// Options.Size. Need is the smallest image size, in bytes, that holds it.
type NoSpaceError struct {
	Need int64
	Size int64
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("ext4: tree needs an image of at least %d bytes (%d MiB), size is %d bytes",
		e.Need, (e.Need+(1<<20)-1)>>20, e.Size)
}

// Is makes errors.Is(err, ErrNoSpace) true for a *NoSpaceError.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

// InodesError is returned by Plan when the file system cannot have the
// inodes the tree and Options.InodeHeadroom need.
type InodesError struct {
	Need uint64 // inodes the tree and headroom need
	Max  uint64 // inodes the file system can have at its size
}

func (e *InodesError) Error() string {
	return fmt.Sprintf("ext4: tree needs %d inodes, an image of this size holds at most %d; make the image bigger or lower the inode headroom", e.Need, e.Max)
}

// Is makes errors.Is(err, ErrTooManyInodes) true for an *InodesError.
func (e *InodesError) Is(target error) bool { return target == ErrTooManyInodes }

// Sentinels for errors.Is; the typed errors carry the numbers.
var (
	ErrNoSpace       = errors.New("ext4: tree does not fit")
	ErrTooManyInodes = errors.New("ext4: too many inodes")
	// ErrContentChanged marks a file whose content differs from its tree
	// entry (size or sha256) while the image is written.
	ErrContentChanged = errors.New("content changed since it was read into the tree")
)

// Skipper is implemented by sinks that can pass over n zero bytes without
// writing them, for example by leaving a hole in a sparse file. After the
// last call the sink must read as zeros up to its final length.
type Skipper interface {
	Skip(n int64) error
}

// ZeroWriter is implemented by digests that take a run of n zero bytes
// without being handed them, in less time than hashing them (a dm-verity
// tree does: a zero block's digest is known in advance).
type ZeroWriter interface {
	WriteZeros(n int64)
}
