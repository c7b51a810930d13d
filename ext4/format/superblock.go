package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Superblock is struct ext4_super_block, 1024 bytes at byte 1024 of the
// volume and at the start of every backup group.
type Superblock struct {
	InodesCount       uint32
	BlocksCountLo     uint32
	RBlocksCountLo    uint32
	FreeBlocksCountLo uint32
	FreeInodesCount   uint32
	FirstDataBlock    uint32
	LogBlockSize      uint32
	LogClusterSize    uint32
	BlocksPerGroup    uint32
	ClustersPerGroup  uint32
	InodesPerGroup    uint32
	Mtime             uint32
	Wtime             uint32
	MntCount          uint16
	MaxMntCount       uint16
	Magic             uint16
	State             uint16
	Errors            uint16
	MinorRevLevel     uint16
	Lastcheck         uint32
	Checkinterval     uint32
	CreatorOS         uint32
	RevLevel          uint32
	DefResuid         uint16
	DefResgid         uint16
	FirstIno          uint32
	InodeSize         uint16
	BlockGroupNr      uint16
	FeatureCompat     CompatFeature
	FeatureIncompat   IncompatFeature
	FeatureRoCompat   RoCompatFeature
	UUID              [16]byte
	VolumeName        [16]byte
	LastMounted       [64]byte
	AlgorithmUsage    uint32
	PreallocBlocks    uint8
	PreallocDirBlocks uint8
	ReservedGdtBlocks uint16
	JournalUUID       [16]byte
	JournalInum       uint32
	JournalDev        uint32
	LastOrphan        uint32
	HashSeed          [16]byte // four little-endian words, kept as bytes
	DefHashVersion    uint8
	JnlBackupType     uint8
	DescSize          uint16
	DefaultMountOpts  uint32
	FirstMetaBg       uint32
	MkfsTime          uint32
	JnlBlocks         [17]uint32 // journal inode i_block[0..14], i_size_high, i_size
	BlocksCountHi     uint32
	RBlocksCountHi    uint32
	FreeBlocksCountHi uint32
	MinExtraIsize     uint16
	WantExtraIsize    uint16
	Flags             uint32
	RaidStride        uint16
	MMPInterval       uint16
	MMPBlock          uint64
	RaidStripeWidth   uint32
	LogGroupsPerFlex  uint8
	ChecksumType      uint8
	EncryptionLevel   uint8
	ReservedPad       uint8
	KbytesWritten     uint64
	SnapshotInum      uint32
	SnapshotID        uint32
	SnapshotRBlocks   uint64
	SnapshotList      uint32
	ErrorCount        uint32
	FirstErrorTime    uint32
	FirstErrorIno     uint32
	FirstErrorBlock   uint64
	FirstErrorFunc    [32]byte
	FirstErrorLine    uint32
	LastErrorTime     uint32
	LastErrorIno      uint32
	LastErrorLine     uint32
	LastErrorBlock    uint64
	LastErrorFunc     [32]byte
	MountOpts         [64]byte
	UsrQuotaInum      uint32
	GrpQuotaInum      uint32
	OverheadClusters  uint32
	BackupBgs         [2]uint32
	EncryptAlgos      [4]uint8
	EncryptPwSalt     [16]byte
	LpfIno            uint32
	PrjQuotaInum      uint32
	ChecksumSeed      uint32
	WtimeHi           uint8
	MtimeHi           uint8
	MkfsTimeHi        uint8
	LastcheckHi       uint8
	FirstErrorTimeHi  uint8
	LastErrorTimeHi   uint8
	FirstErrorErrcode uint8
	LastErrorErrcode  uint8
	Encoding          uint16
	EncodingFlags     uint16
	OrphanFileInum    uint32
	Reserved          [94]uint32
	Checksum          uint32
}

// superblockChecksumOffset is the byte offset of s_checksum.
const superblockChecksumOffset = SuperblockSize - 4

// superblockMagicOffset is where s_magic is in a superblock.
const superblockMagicOffset = 0x38

func init() {
	if n := sizeOf(Superblock{}); n != SuperblockSize {
		panic(fmt.Sprintf("format: superblock is %d bytes, want %d", n, SuperblockSize))
	}
}

// Marshal encodes s into b (at least SuperblockSize bytes) and sets the
// checksum, so the caller never writes a superblock without one.
func (s *Superblock) Marshal(b []byte) {
	s.Checksum = 0
	if _, err := binary.Encode(b[:SuperblockSize], binary.LittleEndian, s); err != nil {
		panic(err) // fixed-size struct into a big enough buffer cannot fail
	}
	s.Checksum = Crc32c(^uint32(0), b[:superblockChecksumOffset])
	le.PutUint32(b[superblockChecksumOffset:], s.Checksum)
}

// Unmarshal decodes a superblock from b.
func (s *Superblock) Unmarshal(b []byte) error {
	if len(b) < SuperblockSize {
		return fmt.Errorf("superblock: %d bytes, want %d", len(b), SuperblockSize)
	}
	_, err := binary.Decode(b[:SuperblockSize], binary.LittleEndian, s)
	return err
}

// BlocksCount is the 64-bit s_blocks_count.
func (s *Superblock) BlocksCount() uint64 {
	return uint64(s.BlocksCountHi)<<32 | uint64(s.BlocksCountLo)
}

// CsumSeed is the seed every metadata checksum but the superblock's starts
// from: crc32c of the file system UUID.
func (s *Superblock) CsumSeed() uint32 {
	if s.FeatureIncompat&IncompatCsumSeed != 0 {
		return s.ChecksumSeed
	}
	return Crc32c(^uint32(0), s.UUID[:])
}

// ErrNoSuperblock is returned by ParseSuperblock for bytes that do not
// hold an ext4 (or ext2/ext3) superblock.
var ErrNoSuperblock = errors.New("no ext4 superblock")

// ParseSuperblock decodes the superblock at the start of b, as read from
// SuperblockOffset, and checks its magic: the one place outside the
// reader that looks into a superblock (an image's size, its label and
// UUID for mounting) does it through this.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrNoSuperblock, len(b), SuperblockSize)
	}
	if le.Uint16(b[superblockMagicOffset:]) != SuperMagic {
		return nil, ErrNoSuperblock
	}
	s := new(Superblock)
	if err := s.Unmarshal(b); err != nil {
		return nil, err
	}
	return s, nil
}

// Bytes is the size of the file system the superblock describes, or 0 when
// its block size is not one ext4 allows (past 64 KiB).
func (s *Superblock) Bytes() int64 {
	if s.LogBlockSize > 6 { // 2^(10+6): 64 KiB
		return 0
	}
	blocks := uint64(s.BlocksCountLo)
	if s.FeatureIncompat&Incompat64bit != 0 {
		blocks = s.BlocksCount()
	}
	return int64(blocks << (10 + s.LogBlockSize))
}

// Label is s_volume_name up to its first NUL.
func (s *Superblock) Label() string {
	return cstring(s.VolumeName[:])
}

// FormatUUID formats a UUID (the file system's, its hash seed, a GPT
// GUID) as 8-4-4-4-12 lower-case hex.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// cstring is b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
