package format

import "fmt"

// ExtentHeader is struct ext4_extent_header, at the start of i_block and
// of every extent tree block.
type ExtentHeader struct {
	Magic      uint16
	Entries    uint16
	Max        uint16
	Depth      uint16
	Generation uint32
}

// ExtentIdx is struct ext4_extent_idx, an interior entry of an extent tree.
type ExtentIdx struct {
	Block  uint32 // first logical block covered
	LeafLo uint32
	LeafHi uint16
	Unused uint16
}

// Extent is struct ext4_extent, a leaf entry mapping logical blocks to
// physical blocks.
type Extent struct {
	Block   uint32 // first logical block
	Len     uint16 // blocks; above MaxExtentLen means uninitialised
	StartHi uint16
	StartLo uint32
}

// ExtentTail is struct ext4_extent_tail, the checksum after the last
// possible entry of an extent tree block.
type ExtentTail struct {
	Checksum uint32
}

// Extent tree sizes.
var (
	ExtentHeaderSize = sizeOf(ExtentHeader{})
	ExtentEntrySize  = sizeOf(Extent{})
)

// Entries an extent tree node holds: 4 in the inode's i_block, 340 in a
// block (whose last 4 bytes hold the tail).
const (
	ExtentsInInode = (60 - 12) / 12
	ExtentsInBlock = (BlockSize - 12 - 4) / 12
)

func init() {
	if ExtentHeaderSize != 12 || ExtentEntrySize != 12 || sizeOf(ExtentIdx{}) != 12 {
		panic(fmt.Sprintf("format: extent structures are %d/%d bytes, want 12", ExtentHeaderSize, ExtentEntrySize))
	}
}

// Marshal encodes h into b.
func (h *ExtentHeader) Marshal(b []byte) {
	le.PutUint16(b[0:], h.Magic)
	le.PutUint16(b[2:], h.Entries)
	le.PutUint16(b[4:], h.Max)
	le.PutUint16(b[6:], h.Depth)
	le.PutUint32(b[8:], h.Generation)
}

// Marshal encodes x into b.
func (x *ExtentIdx) Marshal(b []byte) {
	le.PutUint32(b[0:], x.Block)
	le.PutUint32(b[4:], x.LeafLo)
	le.PutUint16(b[8:], x.LeafHi)
	le.PutUint16(b[10:], x.Unused)
}

// Marshal encodes e into b.
func (e *Extent) Marshal(b []byte) {
	le.PutUint32(b[0:], e.Block)
	le.PutUint16(b[4:], e.Len)
	le.PutUint16(b[6:], e.StartHi)
	le.PutUint32(b[8:], e.StartLo)
}

// SetStart stores the 48-bit physical start block.
func (e *Extent) SetStart(blk uint64) { e.StartLo, e.StartHi = uint32(blk), uint16(blk>>32) }

// SetLeaf stores the 48-bit block number of the child node.
func (x *ExtentIdx) SetLeaf(blk uint64) { x.LeafLo, x.LeafHi = uint32(blk), uint16(blk>>32) }

// SetExtentBlockChecksum stores the checksum of the extent tree block b
// (BlockSize bytes) owned by an inode with checksum seed inodeSeed: crc32c
// over everything before the tail, which sits after eh_max entries.
func SetExtentBlockChecksum(b []byte, inodeSeed uint32) {
	max := int(le.Uint16(b[4:]))
	off := ExtentHeaderSize + max*ExtentEntrySize
	le.PutUint32(b[off:], Crc32c(inodeSeed, b[:off]))
}
