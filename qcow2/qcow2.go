// Package qcow2 writes and reads QEMU's qcow2 disk image format, version
// 3, in the subset olimage needs: one layer (no backing file), no
// snapshots, compression or encryption, 64 KiB clusters. The writer keeps
// zero clusters unallocated, so a sparse volume stays small; the reader
// maps guest offsets to the file and refuses what it does not handle. It
// knows nothing of file systems.
package qcow2

import (
	"encoding/binary"
	"errors"
)

// On-disk constants (docs/interop/qcow2.txt in QEMU).
const (
	Magic       = 0x514649fb // "QFI\xfb"
	Version     = 3
	ClusterBits = 16 // 64 KiB clusters, QEMU's default
	ClusterSize = 1 << ClusterBits

	headerLength  = 104                                    // version 3 header without optional fields
	refcountOrder = 4                                      // 16-bit refcounts, QEMU's default
	l2Entries     = ClusterSize / 8                        // entries of one L2 table: 8192
	rcEntries     = ClusterSize * 8 / (1 << refcountOrder) // refcounts in one block: 32768

	flagCopied     = 1 << 63 // refcount is exactly 1
	flagCompressed = 1 << 62
	flagZero       = 1 // L2: the cluster reads as zeros
	offsetMask     = 0x00fffffffffffe00
)

// header is the fixed part of a version 3 header, big-endian, in order.
type header struct {
	Magic                 uint32
	Version               uint32
	BackingFileOffset     uint64
	BackingFileSize       uint32
	ClusterBits           uint32
	Size                  uint64 // virtual disk size in bytes
	CryptMethod           uint32
	L1Size                uint32 // entries
	L1TableOffset         uint64
	RefcountTableOffset   uint64
	RefcountTableClusters uint32
	NbSnapshots           uint32
	SnapshotsOffset       uint64
	IncompatibleFeatures  uint64
	CompatibleFeatures    uint64
	AutoclearFeatures     uint64
	RefcountOrder         uint32
	HeaderLength          uint32
}

var be = binary.BigEndian

// ErrFormat marks a file that is not a qcow2 image olimage reads.
var ErrFormat = errors.New("qcow2")

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
