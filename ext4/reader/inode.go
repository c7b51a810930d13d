package reader

import (
	"fmt"
	"sync"

	"github.com/internetarchive/olimage/ext4/format"
)

// inode is the part of an on-disk inode the reader uses.
type inode struct {
	ino        uint32
	raw        []byte // the whole on-disk inode (inode size bytes)
	mode       uint16
	uid, gid   uint32
	size       uint64
	links      uint16
	flags      uint32
	blocks     uint64 // raw i_blocks (512-byte units unless huge_file says blocks)
	fileACL    uint64 // xattr block
	generation uint32
	mtime      int64
	extraIsize int // i_extra_isize, 0 for 128-byte inodes
	block      []byte
}

func (in *inode) typ() uint16   { return in.mode & format.ModeTypeMask }
func (in *inode) isDir() bool   { return in.typ() == format.ModeDir }
func (in *inode) isReg() bool   { return in.typ() == format.ModeRegular }
func (in *inode) isLink() bool  { return in.typ() == format.ModeSymlink }
func (in *inode) extents() bool { return in.flags&format.InodeExtentsFl != 0 }
func (in *inode) inline() bool  { return in.flags&format.InodeInlineFl != 0 }
func (in *inode) htree() bool   { return in.flags&format.InodeIndexFl != 0 }

// parseInode decodes the on-disk inode b (the file system's inode size)
// numbered ino. It checks only what later reads rely on: the extra size
// fits, so the xattr area can be located.
func parseInode(b []byte, ino uint32) (*inode, error) {
	if len(b) < format.GoodOldInodeSize {
		return nil, inodeCorrupt(ino, "%d bytes, want at least %d", len(b), format.GoodOldInodeSize)
	}
	in := &inode{ino: ino, raw: b}
	in.mode = le.Uint16(b[0x00:])
	in.uid = uint32(le.Uint16(b[0x02:])) | uint32(le.Uint16(b[0x78:]))<<16
	in.gid = uint32(le.Uint16(b[0x18:])) | uint32(le.Uint16(b[0x7A:]))<<16
	in.size = uint64(le.Uint32(b[0x04:])) | uint64(le.Uint32(b[0x6C:]))<<32
	in.links = le.Uint16(b[0x1A:])
	in.flags = le.Uint32(b[0x20:])
	in.blocks = uint64(le.Uint32(b[0x1C:])) | uint64(le.Uint16(b[0x74:]))<<32
	in.fileACL = uint64(le.Uint32(b[0x68:])) | uint64(le.Uint16(b[0x76:]))<<32
	in.generation = le.Uint32(b[0x64:])
	in.block = b[0x28:0x64:0x64]
	if len(b) >= 0x82 {
		in.extraIsize = int(le.Uint16(b[0x80:]))
		if in.extraIsize > len(b)-format.GoodOldInodeSize || in.extraIsize%4 != 0 {
			return nil, inodeCorrupt(ino, "i_extra_isize %d does not fit a %d-byte inode", in.extraIsize, len(b))
		}
	}
	mtime := int64(int32(le.Uint32(b[0x10:])))
	if in.extraIsize >= 0x8C-format.GoodOldInodeSize {
		// The extra field's low two bits extend the seconds by 2^32.
		mtime += int64(le.Uint32(b[0x88:])&3) << 32
	}
	in.mtime = mtime
	return in, nil
}

// inodeChecksum computes the metadata_csum checksum of the on-disk inode
// b numbered ino, and reports whether it matches the stored one.
func (fs *FS) inodeChecksumOK(b []byte, ino uint32) bool {
	gen := le.Uint32(b[0x64:])
	seed := format.InodeCsumSeed(fs.seed, ino, gen)
	hi := len(b) >= 0x84 && int(le.Uint16(b[0x80:])) >= 4
	var zero [2]byte
	c := format.Crc32c(seed, b[:0x7C])
	c = format.Crc32c(c, zero[:])
	c = format.Crc32c(c, b[0x7E:format.GoodOldInodeSize])
	if len(b) > format.GoodOldInodeSize {
		if hi {
			c = format.Crc32c(c, b[format.GoodOldInodeSize:0x82])
			c = format.Crc32c(c, zero[:])
			c = format.Crc32c(c, b[0x84:])
		} else {
			c = format.Crc32c(c, b[format.GoodOldInodeSize:])
		}
	}
	stored := uint32(le.Uint16(b[0x7C:]))
	if hi {
		stored |= uint32(le.Uint16(b[0x82:])) << 16
		return stored == c
	}
	return stored == c&0xFFFF
}

// inodeLocation returns the byte offset of inode ino in the image.
func (fs *FS) inodeLocation(ino uint32) (group uint32, index uint32, err error) {
	if ino == 0 || ino > fs.inodes {
		return 0, 0, inodeCorrupt(ino, "inode number out of range (1 to %d)", fs.inodes)
	}
	return (ino - 1) / fs.ipg, (ino - 1) % fs.ipg, nil
}

// readInode reads and decodes inode ino.
func (fs *FS) readInode(ino uint32) (*inode, error) {
	g, idx, err := fs.inodeLocation(ino)
	if err != nil {
		return nil, err
	}
	b := make([]byte, fs.isize)
	if err := fs.cache.read(b, g, idx); err != nil {
		return nil, inodeCorrupt(ino, "%v", err)
	}
	return parseInode(b, ino)
}

// iBlocks is the inode's allocated space in file system blocks.
func (fs *FS) iBlocks(in *inode) uint64 {
	if fs.sb.FeatureRoCompat&format.RoCompatHugeFile != 0 && in.flags&format.InodeHugeFileFl != 0 {
		return uint64(le.Uint32(in.raw[0x1C:])) | uint64(le.Uint16(in.raw[0x74:]))<<32
	}
	return in.blocks / uint64(fs.bs/512)
}

// itableCache keeps recently read chunks of inode tables, so reading the
// inodes of a directory, which are usually close together, costs one
// large read instead of one per inode.
type itableCache struct {
	mu    sync.Mutex
	chunk int // bytes per chunk, a multiple of the inode size
	slots [64]itableSlot
	fs    *FS
}

type itableSlot struct {
	valid bool
	group uint32
	index uint32 // chunk index within the group's inode table
	n     int    // valid bytes
	buf   []byte
}

func (c *itableCache) init(fs *FS) {
	c.fs = fs
	c.chunk = 32 << 10
	if c.chunk < fs.isize {
		c.chunk = fs.isize
	}
	c.chunk -= c.chunk % fs.isize
}

// read copies inode idx of group g into b.
func (c *itableCache) read(b []byte, g, idx uint32) error {
	fs := c.fs
	off := uint64(idx) * uint64(fs.isize)
	ci := uint32(off / uint64(c.chunk))
	inChunk := int(off % uint64(c.chunk))
	slot := &c.slots[(uint64(g)*131+uint64(ci))%uint64(len(c.slots))]
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slot.valid || slot.group != g || slot.index != ci {
		slot.valid = false
		tableBytes := uint64(fs.ipg) * uint64(fs.isize)
		start := uint64(ci) * uint64(c.chunk)
		n := int(min(uint64(c.chunk), tableBytes-start))
		if slot.buf == nil {
			slot.buf = make([]byte, c.chunk)
		}
		pos := int64(fs.groups[g].inodeTable)*fs.bs + int64(start)
		if err := fs.readAt(slot.buf[:n], pos); err != nil {
			return fmt.Errorf("group %d inode table: %w", g, err)
		}
		slot.valid, slot.group, slot.index, slot.n = true, g, ci, n
	}
	if inChunk+len(b) > slot.n {
		return fmt.Errorf("group %d inode table: inode %d beyond table", g, idx)
	}
	copy(b, slot.buf[inChunk:inChunk+len(b)])
	return nil
}
