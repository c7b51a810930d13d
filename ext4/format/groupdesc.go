package format

import (
	"encoding/binary"
	"fmt"
)

// GroupDesc is struct ext4_group_desc in its 64-byte (64bit feature) form.
type GroupDesc struct {
	BlockBitmapLo     uint32
	InodeBitmapLo     uint32
	InodeTableLo      uint32
	FreeBlocksCountLo uint16
	FreeInodesCountLo uint16
	UsedDirsCountLo   uint16
	Flags             uint16
	ExcludeBitmapLo   uint32
	BlockBitmapCsumLo uint16
	InodeBitmapCsumLo uint16
	ItableUnusedLo    uint16
	Checksum          uint16
	BlockBitmapHi     uint32
	InodeBitmapHi     uint32
	InodeTableHi      uint32
	FreeBlocksCountHi uint16
	FreeInodesCountHi uint16
	UsedDirsCountHi   uint16
	ItableUnusedHi    uint16
	ExcludeBitmapHi   uint32
	BlockBitmapCsumHi uint16
	InodeBitmapCsumHi uint16
	Reserved          uint32
}

// groupDescChecksumOffset is the byte offset of bg_checksum.
const groupDescChecksumOffset = 0x1E

func init() {
	if n := sizeOf(GroupDesc{}); n != DescSize {
		panic(fmt.Sprintf("format: group descriptor is %d bytes, want %d", n, DescSize))
	}
}

// Marshal encodes d, the descriptor of group g, into b (DescSize bytes)
// with its metadata_csum checksum: the low 16 bits of crc32c over the
// group number and the descriptor with bg_checksum zeroed.
func (d *GroupDesc) Marshal(b []byte, g uint32, csumSeed uint32) {
	d.Checksum = 0
	if _, err := binary.Encode(b[:DescSize], binary.LittleEndian, d); err != nil {
		panic(err)
	}
	var gb [4]byte
	le.PutUint32(gb[:], g)
	c := Crc32c(csumSeed, gb[:])
	c = Crc32c(c, b[:DescSize])
	d.Checksum = uint16(c)
	le.PutUint16(b[groupDescChecksumOffset:], d.Checksum)
}

// Unmarshal decodes a descriptor from b.
func (d *GroupDesc) Unmarshal(b []byte) error {
	if len(b) < DescSize {
		return fmt.Errorf("group descriptor: %d bytes, want %d", len(b), DescSize)
	}
	_, err := binary.Decode(b[:DescSize], binary.LittleEndian, d)
	return err
}

// SetLocations stores the 64-bit block numbers of the group's bitmaps and
// inode table.
func (d *GroupDesc) SetLocations(blockBitmap, inodeBitmap, inodeTable uint64) {
	d.BlockBitmapLo, d.BlockBitmapHi = uint32(blockBitmap), uint32(blockBitmap>>32)
	d.InodeBitmapLo, d.InodeBitmapHi = uint32(inodeBitmap), uint32(inodeBitmap>>32)
	d.InodeTableLo, d.InodeTableHi = uint32(inodeTable), uint32(inodeTable>>32)
}

// SetCounts stores the group's free block, free inode, directory and
// unused inode-table counts.
func (d *GroupDesc) SetCounts(freeBlocks, freeInodes, usedDirs, itableUnused uint32) {
	d.FreeBlocksCountLo, d.FreeBlocksCountHi = uint16(freeBlocks), uint16(freeBlocks>>16)
	d.FreeInodesCountLo, d.FreeInodesCountHi = uint16(freeInodes), uint16(freeInodes>>16)
	d.UsedDirsCountLo, d.UsedDirsCountHi = uint16(usedDirs), uint16(usedDirs>>16)
	d.ItableUnusedLo, d.ItableUnusedHi = uint16(itableUnused), uint16(itableUnused>>16)
}

// SetBitmapChecksums stores the checksums of the group's block bitmap
// (over BlocksPerGroup/8 bytes) and inode bitmap (over inodesPerGroup/8 bytes).
func (d *GroupDesc) SetBitmapChecksums(csumSeed uint32, blockBitmap, inodeBitmap []byte) {
	b := Crc32c(csumSeed, blockBitmap)
	i := Crc32c(csumSeed, inodeBitmap)
	d.BlockBitmapCsumLo, d.BlockBitmapCsumHi = uint16(b), uint16(b>>16)
	d.InodeBitmapCsumLo, d.InodeBitmapCsumHi = uint16(i), uint16(i>>16)
}
