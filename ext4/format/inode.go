package format

import (
	"encoding/binary"
	"fmt"
)

// Inode is struct ext4_inode up to and including the 32 bytes of extra
// fields this package always uses (i_extra_isize = ExtraIsize). The rest
// of an InodeSize-byte slot is the in-inode xattr area (see IbodyXattrs).
type Inode struct {
	Mode        uint16
	UIDLo       uint16
	SizeLo      uint32
	Atime       uint32
	Ctime       uint32
	Mtime       uint32
	Dtime       uint32
	GIDLo       uint16
	LinksCount  uint16
	BlocksLo    uint32 // 512-byte sectors, with i_blocks_high
	Flags       uint32
	Version     uint32   // osd1.l_i_version
	Block       [60]byte // i_block: extent tree root, fast symlink text or block map
	Generation  uint32
	FileACLLo   uint32 // xattr block
	SizeHigh    uint32
	ObsoFaddr   uint32
	BlocksHigh  uint16
	FileACLHigh uint16
	UIDHigh     uint16
	GIDHigh     uint16
	ChecksumLo  uint16
	Reserved    uint16
	ExtraIsize  uint16
	ChecksumHi  uint16
	CtimeExtra  uint32
	MtimeExtra  uint32
	AtimeExtra  uint32
	Crtime      uint32
	CrtimeExtra uint32
	VersionHi   uint32
	Projid      uint32
}

// Offsets inside an on-disk inode.
const (
	inodeChecksumLoOffset = 0x7C
	inodeChecksumHiOffset = 0x82
	InodeFixedSize        = GoodOldInodeSize + ExtraIsize // bytes Inode marshals to
	IbodyXattrOffset      = InodeFixedSize                // where the in-inode xattr area starts
)

func init() {
	if n := sizeOf(Inode{}); n != InodeFixedSize {
		panic(fmt.Sprintf("format: inode is %d bytes, want %d", n, InodeFixedSize))
	}
}

// Marshal encodes the inode into b[:InodeFixedSize] without touching the
// rest of b. It is written out by hand because it runs once per inode;
// TestInodeMarshal checks it against binary.Encode.
func (i *Inode) Marshal(b []byte) {
	_ = b[InodeFixedSize-1]
	le.PutUint16(b[0x00:], i.Mode)
	le.PutUint16(b[0x02:], i.UIDLo)
	le.PutUint32(b[0x04:], i.SizeLo)
	le.PutUint32(b[0x08:], i.Atime)
	le.PutUint32(b[0x0C:], i.Ctime)
	le.PutUint32(b[0x10:], i.Mtime)
	le.PutUint32(b[0x14:], i.Dtime)
	le.PutUint16(b[0x18:], i.GIDLo)
	le.PutUint16(b[0x1A:], i.LinksCount)
	le.PutUint32(b[0x1C:], i.BlocksLo)
	le.PutUint32(b[0x20:], i.Flags)
	le.PutUint32(b[0x24:], i.Version)
	copy(b[0x28:0x64], i.Block[:])
	le.PutUint32(b[0x64:], i.Generation)
	le.PutUint32(b[0x68:], i.FileACLLo)
	le.PutUint32(b[0x6C:], i.SizeHigh)
	le.PutUint32(b[0x70:], i.ObsoFaddr)
	le.PutUint16(b[0x74:], i.BlocksHigh)
	le.PutUint16(b[0x76:], i.FileACLHigh)
	le.PutUint16(b[0x78:], i.UIDHigh)
	le.PutUint16(b[0x7A:], i.GIDHigh)
	le.PutUint16(b[0x7C:], i.ChecksumLo)
	le.PutUint16(b[0x7E:], i.Reserved)
	le.PutUint16(b[0x80:], i.ExtraIsize)
	le.PutUint16(b[0x82:], i.ChecksumHi)
	le.PutUint32(b[0x84:], i.CtimeExtra)
	le.PutUint32(b[0x88:], i.MtimeExtra)
	le.PutUint32(b[0x8C:], i.AtimeExtra)
	le.PutUint32(b[0x90:], i.Crtime)
	le.PutUint32(b[0x94:], i.CrtimeExtra)
	le.PutUint32(b[0x98:], i.VersionHi)
	le.PutUint32(b[0x9C:], i.Projid)
}

// Unmarshal decodes the fixed part of an inode from b.
func (i *Inode) Unmarshal(b []byte) error {
	if len(b) < InodeFixedSize {
		return fmt.Errorf("inode: %d bytes, want %d", len(b), InodeFixedSize)
	}
	_, err := binary.Decode(b[:InodeFixedSize], binary.LittleEndian, i)
	return err
}

// SetSize stores the 64-bit i_size.
func (i *Inode) SetSize(n uint64) { i.SizeLo, i.SizeHigh = uint32(n), uint32(n>>32) }

// SetBlocks stores i_blocks in 512-byte sectors from a count of file
// system blocks. Counts too big for 48 bits of sectors would need
// InodeHugeFileFl; no image olimage writes comes near that.
func (i *Inode) SetBlocks(fsBlocks uint64) {
	s := fsBlocks * (BlockSize / 512)
	i.BlocksLo, i.BlocksHigh = uint32(s), uint16(s>>32)
}

// SetOwner stores the 32-bit owner and group.
func (i *Inode) SetOwner(uid, gid uint32) {
	i.UIDLo, i.UIDHigh = uint16(uid), uint16(uid>>16)
	i.GIDLo, i.GIDHigh = uint16(gid), uint16(gid>>16)
}

// SetFileACL stores the xattr block number.
func (i *Inode) SetFileACL(blk uint64) { i.FileACLLo, i.FileACLHigh = uint32(blk), uint16(blk>>32) }

// SetTimes sets access, change, modification and creation time to t.
func (i *Inode) SetTimes(t int64) {
	lo, extra := EncodeTime(t)
	i.Atime, i.Ctime, i.Mtime, i.Crtime = lo, lo, lo, lo
	i.AtimeExtra, i.CtimeExtra, i.MtimeExtra, i.CrtimeExtra = extra, extra, extra, extra
}

// SetInodeChecksum computes the metadata_csum checksum of the on-disk
// inode b (InodeSize bytes) numbered ino and stores it: crc32c over the
// whole inode with both checksum fields zeroed, from the inode's seed. The
// high half is stored only when i_extra_isize covers it.
func SetInodeChecksum(b []byte, csumSeed, ino uint32) {
	_ = b[InodeSize-1]
	gen := le.Uint32(b[0x64:])
	le.PutUint16(b[inodeChecksumLoOffset:], 0)
	extra := le.Uint16(b[0x80:])
	hi := extra >= 4
	if hi {
		le.PutUint16(b[inodeChecksumHiOffset:], 0)
	}
	c := Crc32c(InodeCsumSeed(csumSeed, ino, gen), b[:InodeSize])
	le.PutUint16(b[inodeChecksumLoOffset:], uint16(c))
	if hi {
		le.PutUint16(b[inodeChecksumHiOffset:], uint16(c>>16))
	}
}
