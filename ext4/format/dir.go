package format

// DirEntry is the fixed part of struct ext4_dir_entry_2; the name follows
// it, padded with zeros to a multiple of 4 bytes.
type DirEntry struct {
	Inode    uint32
	RecLen   uint16
	NameLen  uint8
	FileType uint8
}

// DirEntryTail is struct ext4_dir_entry_tail, the fake entry in the last
// 12 bytes of a directory leaf block that holds the block's checksum.
type DirEntryTail struct {
	ReservedZero1 uint32
	RecLen        uint16
	ReservedZero2 uint8
	FileType      uint8 // FtDirCsum
	Checksum      uint32
}

// DxRootInfo is struct dx_root_info, after the "." and ".." entries of an
// htree directory's first block.
type DxRootInfo struct {
	ReservedZero   uint32
	HashVersion    uint8
	InfoLength     uint8 // 8
	IndirectLevels uint8
	UnusedFlags    uint8
}

// DxCountLimit is struct dx_countlimit, which takes the place of the hash
// of the first dx_entry of an index block.
type DxCountLimit struct {
	Limit uint16
	Count uint16
}

// DxEntry is struct dx_entry: leaves or subtrees with hashes from Hash on.
type DxEntry struct {
	Hash  uint32
	Block uint32 // logical block in the directory
}

// DxTail is struct dx_tail, after the last possible dx_entry of an index
// block when metadata_csum is on.
type DxTail struct {
	Reserved uint32
	Checksum uint32
}

// Directory layout sizes.
var (
	DirEntrySize     = sizeOf(DirEntry{})     // 8
	DirEntryTailSize = sizeOf(DirEntryTail{}) // 12
	DxEntrySize      = sizeOf(DxEntry{})      // 8
	DxTailSize       = sizeOf(DxTail{})       // 8
	dxRootInfoSize   = sizeOf(DxRootInfo{})   // 8
)

// Offsets and capacities of htree index blocks (metadata_csum on, so one
// dx_entry slot gives way to the dx_tail).
const (
	DxRootCountOffset = 12 + 12 + 8 // "." entry, ".." entry, dx_root_info
	DxNodeCountOffset = 8           // an empty fake directory entry
	DxRootLimit       = (BlockSize - DxRootCountOffset - 8) / 8
	DxNodeLimit       = (BlockSize - DxNodeCountOffset - 8) / 8
	DirLeafSpace      = BlockSize - 12 // bytes for entries in a leaf block before the tail
)

func init() {
	if DirEntrySize != 8 || DirEntryTailSize != 12 || DxEntrySize != 8 || DxTailSize != 8 || dxRootInfoSize != 8 {
		panic("format: directory structure sizes are wrong")
	}
}

// DirRecLen is the smallest rec_len of an entry with a name of n bytes.
func DirRecLen(n int) int { return (DirEntrySize + n + 3) &^ 3 }

// PutDirEntry writes an entry with its name at b and returns the bytes
// used, recLen. Padding after the name is zeroed.
func PutDirEntry(b []byte, ino uint32, recLen int, name string, fileType uint8) int {
	le.PutUint32(b[0:], ino)
	le.PutUint16(b[4:], uint16(recLen))
	b[6] = uint8(len(name))
	b[7] = fileType
	n := copy(b[8:], name)
	clear(b[8+n : recLen])
	return recLen
}

// SetDirLeafTail writes the checksum tail of the directory leaf block b
// (BlockSize bytes) owned by an inode with checksum seed inodeSeed.
func SetDirLeafTail(b []byte, inodeSeed uint32) {
	t := b[DirLeafSpace:]
	le.PutUint32(t[0:], 0)
	le.PutUint16(t[4:], uint16(DirEntryTailSize))
	t[6] = 0
	t[7] = FtDirCsum
	le.PutUint32(t[8:], Crc32c(inodeSeed, b[:DirLeafSpace]))
}

// PutDxRoot writes the head of an htree root block: "." (ino), ".."
// (parent) spanning the block, dx_root_info and the count and limit.
// The caller writes the dx entries (the first one's hash is the
// count/limit pair), then calls SetDxTail.
func PutDxRoot(b []byte, ino, parent uint32, hashVersion, levels uint8, count uint16) {
	clear(b[:BlockSize])
	PutDirEntry(b[0:], ino, 12, ".", FtDir)
	PutDirEntry(b[12:], parent, BlockSize-12, "..", FtDir)
	i := DxRootInfo{HashVersion: hashVersion, InfoLength: 8, IndirectLevels: levels} // info_length is sizeof(dx_root_info)
	le.PutUint32(b[24:], i.ReservedZero)
	b[28], b[29], b[30], b[31] = i.HashVersion, i.InfoLength, i.IndirectLevels, i.UnusedFlags
	le.PutUint16(b[DxRootCountOffset:], DxRootLimit)
	le.PutUint16(b[DxRootCountOffset+2:], count)
}

// PutDxNode writes the head of an interior htree block: an empty entry
// spanning the block, then the count and limit.
func PutDxNode(b []byte, count uint16) {
	clear(b[:BlockSize])
	le.PutUint32(b[0:], 0)
	le.PutUint16(b[4:], BlockSize)
	le.PutUint16(b[DxNodeCountOffset:], DxNodeLimit)
	le.PutUint16(b[DxNodeCountOffset+2:], count)
}

// PutDxEntry writes dx_entry i of the index block b whose count/limit is
// at countOffset. Entry 0 has no hash: its slot holds count and limit.
func PutDxEntry(b []byte, countOffset, i int, hash, block uint32) {
	off := countOffset + i*DxEntrySize
	if i > 0 {
		le.PutUint32(b[off:], hash)
	}
	le.PutUint32(b[off+4:], block)
}

// SetDxTail writes the dx_tail of the index block b: crc32c over the used
// dx entries, then the tail's reserved word and a zero checksum.
func SetDxTail(b []byte, countOffset int, inodeSeed uint32) {
	limit := int(le.Uint16(b[countOffset:]))
	count := int(le.Uint16(b[countOffset+2:]))
	tail := b[countOffset+limit*DxEntrySize:]
	le.PutUint32(tail[0:], 0)
	le.PutUint32(tail[4:], 0)
	c := Crc32c(inodeSeed, b[:countOffset+count*DxEntrySize])
	c = Crc32c(c, tail[:8])
	le.PutUint32(tail[4:], c)
}
