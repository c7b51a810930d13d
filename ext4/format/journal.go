package format

import (
	"encoding/binary"
	"fmt"
)

// JournalHeader is journal_header_t, at the start of every JBD2 metadata
// block. JBD2 structures are big-endian.
type JournalHeader struct {
	Magic     uint32
	BlockType uint32
	Sequence  uint32
}

// JournalSuperblock is journal_superblock_t (JBD2 v2), the first block of
// the journal.
type JournalSuperblock struct {
	Header          JournalHeader
	BlockSize       uint32
	MaxLen          uint32 // blocks in the journal
	First           uint32 // first block of log data
	Sequence        uint32 // first commit ID expected in the log
	Start           uint32 // block of the log's start; 0 means the journal is clean
	Errno           int32
	FeatureCompat   uint32
	FeatureIncompat uint32
	FeatureRoCompat uint32
	UUID            [16]byte
	NrUsers         uint32
	DynSuper        uint32
	MaxTransaction  uint32
	MaxTransData    uint32
	ChecksumType    uint8
	Padding2        [3]uint8
	NumFCBlocks     uint32
	Head            uint32
	Padding         [40]uint32
	Checksum        uint32
	Users           [16 * 48]byte
}

// JBD2 block types.
const (
	JournalSuperblockV2 = 4 // h_blocktype of a v2 journal superblock
)

// Journal features and checksum type.
const (
	JournalIncompat64Bit  = 0x2  // JBD2_FEATURE_INCOMPAT_64BIT: 64-bit block numbers in the log
	JournalIncompatCsumV3 = 0x10 // JBD2_FEATURE_INCOMPAT_CSUM_V3: checksummed log blocks
	JournalCsumCrc32c     = 4    // JBD2_CRC32C_CHKSUM: s_checksum_type
)

// SetJournalChecksum sets the checksum of the journal superblock in b
// (CSUM_V3): crc32c from ~0 of the 1024 bytes with the checksum zeroed.
func SetJournalChecksum(b []byte) {
	const off = 0xFC // s_checksum
	clear(b[off : off+4])
	binary.BigEndian.PutUint32(b[off:], Crc32c(^uint32(0), b[:JournalSuperblockSize]))
}

// JournalSuperblockSize is the encoded size of JournalSuperblock.
const JournalSuperblockSize = 1024

// Smallest journal e2fsck accepts, in blocks.
const JournalMinBlocks = 1024

func init() {
	if n := sizeOf(JournalSuperblock{}); n != JournalSuperblockSize {
		panic(fmt.Sprintf("format: journal superblock is %d bytes, want %d", n, JournalSuperblockSize))
	}
}

// Marshal encodes j big-endian into b.
func (j *JournalSuperblock) Marshal(b []byte) {
	if _, err := binary.Encode(b[:JournalSuperblockSize], binary.BigEndian, j); err != nil {
		panic(err)
	}
}

// DefaultJournalBlocks is the journal size mke2fs picks for a file system
// of n blocks, or 0 when it is too small to have one.
func DefaultJournalBlocks(n uint64) uint32 {
	switch {
	case n < 2048:
		return 0
	case n < 32768:
		return 1024
	case n < 256*1024:
		return 4096
	case n < 512*1024:
		return 8192
	case n < 4096*1024:
		return 16384
	case n < 8192*1024:
		return 32768
	case n < 16384*1024:
		return 65536
	case n < 32768*1024:
		return 131072
	}
	return 262144
}
