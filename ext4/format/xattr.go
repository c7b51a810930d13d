package format

import (
	"errors"
	"fmt"
	"strings"
)

// XattrHeader is struct ext4_xattr_header, at the start of an xattr block.
type XattrHeader struct {
	Magic    uint32
	Refcount uint32
	Blocks   uint32
	Hash     uint32
	Checksum uint32
	Reserved [3]uint32
}

// XattrIbodyHeader is struct ext4_xattr_ibody_header, at the start of the
// in-inode xattr area.
type XattrIbodyHeader struct {
	Magic uint32
}

// XattrEntry is the fixed part of struct ext4_xattr_entry; the name
// follows, padded to a multiple of 4 bytes.
type XattrEntry struct {
	NameLen   uint8
	NameIndex uint8
	ValueOffs uint16
	ValueInum uint32
	ValueSize uint32
	Hash      uint32
}

// Xattr sizes.
var (
	XattrHeaderSize = sizeOf(XattrHeader{})      // 32
	XattrEntrySize  = sizeOf(XattrEntry{})       // 16
	xattrIbodyHead  = sizeOf(XattrIbodyHeader{}) // 4
)

// Space for xattrs: in an inode after the ibody header, and in a block
// after its header. Both include the 4-byte end-of-entries marker.
var (
	IbodyXattrSpace = InodeSize - IbodyXattrOffset - xattrIbodyHead
	BlockXattrSpace = BlockSize - XattrHeaderSize
)

// Attribute name indexes (e_name_index) and the prefixes they stand for.
const (
	XattrIndexUser     = 1
	XattrIndexTrusted  = 4
	XattrIndexSecurity = 6
)

var xattrPrefixes = []struct {
	prefix string
	index  uint8
}{
	{"user.", XattrIndexUser},
	{"trusted.", XattrIndexTrusted},
	{"security.", XattrIndexSecurity},
}

// ErrXattrName is returned by SplitXattrName for names olimage cannot store.
var ErrXattrName = errors.New("unsupported xattr name (want user.*, trusted.* or security.*)")

// Xattr is one attribute as stored: name index, name without its prefix,
// value.
type Xattr struct {
	Index uint8
	Name  string
	Value []byte
}

// SplitXattrName maps a full attribute name to its index and suffix.
// POSIX ACLs and other system.* names need their own encodings and are
// refused.
func SplitXattrName(full string) (uint8, string, error) {
	for _, p := range xattrPrefixes {
		if rest, ok := strings.CutPrefix(full, p.prefix); ok && rest != "" {
			if len(rest) > 255 {
				return 0, "", fmt.Errorf("xattr %q: name longer than 255 bytes", full)
			}
			return p.index, rest, nil
		}
	}
	return 0, "", fmt.Errorf("xattr %q: %w", full, ErrXattrName)
}

// XattrLess is the order ext4 keeps block entries in (and olimage also
// uses in the inode): by index, then name length, then name.
func XattrLess(a, b *Xattr) bool {
	if a.Index != b.Index {
		return a.Index < b.Index
	}
	if len(a.Name) != len(b.Name) {
		return len(a.Name) < len(b.Name)
	}
	return a.Name < b.Name
}

// XattrCost is the space one attribute takes: its padded entry and its
// padded value.
func XattrCost(x *Xattr) int {
	return (XattrEntrySize+len(x.Name)+3)&^3 + (len(x.Value)+3)&^3
}

// xattrHash is ext4_xattr_hash_entry: the name (bytes as unsigned char)
// then the value's little-endian words.
func xattrHash(name string, value []byte) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<5 ^ h>>27 ^ uint32(name[i])
	}
	for i := 0; i < len(value); i += 4 {
		var w [4]byte
		copy(w[:], value[i:])
		h = h<<16 ^ h>>16 ^ le.Uint32(w[:])
	}
	return h
}

// putXattrs lays out attrs (already sorted) in region: entries from the
// front, values packed from the back, each value offset counted from
// base bytes before region. It returns the entry hashes combined as
// ext4_xattr_rehash does, for a block header.
func putXattrs(region []byte, base int, attrs []Xattr) (uint32, error) {
	clear(region)
	need := 4
	for i := range attrs {
		need += XattrCost(&attrs[i])
	}
	if need > len(region) {
		return 0, fmt.Errorf("xattrs: %d bytes do not fit in %d", need, len(region))
	}
	off, end := 0, len(region)
	var blockHash uint32
	for i := range attrs {
		x := &attrs[i]
		vlen := (len(x.Value) + 3) &^ 3
		voff := 0
		if len(x.Value) > 0 {
			end -= vlen
			copy(region[end:], x.Value)
			voff = base + end
		}
		h := xattrHash(x.Name, x.Value)
		e := region[off:]
		e[0] = uint8(len(x.Name))
		e[1] = x.Index
		le.PutUint16(e[2:], uint16(voff))
		le.PutUint32(e[4:], 0)
		le.PutUint32(e[8:], uint32(len(x.Value)))
		le.PutUint32(e[12:], h)
		copy(e[XattrEntrySize:], x.Name)
		off += (XattrEntrySize + len(x.Name) + 3) &^ 3
		blockHash = blockHash<<16 ^ blockHash>>16 ^ h
	}
	return blockHash, nil
}

// PutIbodyXattrs writes the in-inode xattr area of the on-disk inode b
// (InodeSize bytes): the ibody magic, then attrs. Values are addressed
// from the first entry. With no attrs the area stays zero.
func PutIbodyXattrs(b []byte, attrs []Xattr) error {
	area := b[IbodyXattrOffset:InodeSize]
	clear(area)
	if len(attrs) == 0 {
		return nil
	}
	le.PutUint32(area, XattrMagic)
	_, err := putXattrs(area[xattrIbodyHead:], 0, attrs)
	return err
}

// PutXattrBlock writes the xattr block b (BlockSize bytes) numbered blk
// holding attrs, with its header hash and metadata_csum checksum.
func PutXattrBlock(b []byte, blk uint64, csumSeed uint32, attrs []Xattr) error {
	h, err := putXattrs(b[XattrHeaderSize:BlockSize], XattrHeaderSize, attrs)
	if err != nil {
		return err
	}
	hdr := b[:XattrHeaderSize]
	clear(hdr)
	le.PutUint32(hdr[0:], XattrMagic)
	le.PutUint32(hdr[4:], 1) // h_refcount: one inode uses it
	le.PutUint32(hdr[8:], 1) // h_blocks: always 1
	le.PutUint32(hdr[12:], h)
	var nb [8]byte
	le.PutUint64(nb[:], blk)
	c := Crc32c(csumSeed, nb[:])
	le.PutUint32(hdr[16:], Crc32c(c, b[:BlockSize]))
	return nil
}
