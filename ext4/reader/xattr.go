package reader

import (
	"fmt"
	"io"
	"sort"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/tree"
)

// Xattr name indexes beyond those package format writes.
const (
	xattrIndexACLAccess  = 2
	xattrIndexACLDefault = 3
	xattrIndexSystem     = 7
	xattrIndexRichACL    = 8
)

// xattrPrefix maps e_name_index to the name prefix the kernel shows.
func xattrPrefix(index uint8) (string, bool) {
	switch index {
	case format.XattrIndexUser:
		return "user.", true
	case xattrIndexACLAccess:
		return "system.posix_acl_access", true
	case xattrIndexACLDefault:
		return "system.posix_acl_default", true
	case format.XattrIndexTrusted:
		return "trusted.", true
	case format.XattrIndexSecurity:
		return "security.", true
	case xattrIndexSystem:
		return "system.", true
	case xattrIndexRichACL:
		return "system.richacl", true
	}
	return "", false
}

// rawXattr is one attribute as stored.
type rawXattr struct {
	index uint8
	name  string // without prefix
	value []byte
	inum  uint32 // ea_inode holding the value, 0 when the value is inline
	size  uint32 // value size
}

// parseXattrEntries parses the entries starting at entries[0]; values
// are found at offsets into values. It stops at the 4 zero bytes that
// end the list, or at the end of entries.
func parseXattrEntries(entries, values []byte) ([]rawXattr, error) {
	var out []rawXattr
	total := 0
	for off := 0; off+4 <= len(entries); {
		e := entries[off:]
		if le.Uint32(e) == 0 {
			return out, nil
		}
		if len(e) < format.XattrEntrySize {
			return nil, fmt.Errorf("xattr entry at %d is truncated", off)
		}
		nameLen := int(e[0])
		size := (format.XattrEntrySize + nameLen + 3) &^ 3
		if size > len(e) {
			return nil, fmt.Errorf("xattr entry at %d: name of %d bytes runs past the end", off, nameLen)
		}
		x := rawXattr{
			index: e[1],
			name:  string(e[format.XattrEntrySize : format.XattrEntrySize+nameLen]),
			inum:  le.Uint32(e[4:]),
			size:  le.Uint32(e[8:]),
		}
		voff := int(le.Uint16(e[2:]))
		if x.size > maxXattrValue {
			return nil, fmt.Errorf("xattr %q: value of %d bytes", x.name, x.size)
		}
		total += int(x.size)
		if total > maxXattrTotal {
			return nil, fmt.Errorf("xattrs: more than %d bytes of values", maxXattrTotal)
		}
		if x.inum == 0 {
			if voff+int(x.size) > len(values) {
				return nil, fmt.Errorf("xattr %q: value at %d+%d runs past the end (%d bytes)", x.name, voff, x.size, len(values))
			}
			x.value = values[voff : voff+int(x.size) : voff+int(x.size)]
		}
		out = append(out, x)
		off += size
	}
	return out, nil
}

// ibodyXattrs parses the in-inode xattr area.
func (fs *FS) ibodyXattrs(in *inode) ([]rawXattr, error) {
	start := format.GoodOldInodeSize + in.extraIsize
	if in.extraIsize == 0 || start+4 > len(in.raw) {
		return nil, nil
	}
	area := in.raw[start:]
	if le.Uint32(area) != format.XattrMagic {
		return nil, nil
	}
	xs, err := parseXattrEntries(area[4:], area[4:])
	if err != nil {
		return nil, inodeCorrupt(in.ino, "in-inode %v", err)
	}
	return xs, nil
}

// parseXattrBlock checks the header of the xattr block b and parses its
// entries.
func parseXattrBlock(b []byte) ([]rawXattr, error) {
	if len(b) < format.XattrHeaderSize+4 {
		return nil, fmt.Errorf("xattr block of %d bytes", len(b))
	}
	if m := le.Uint32(b); m != format.XattrMagic {
		return nil, fmt.Errorf("bad xattr block magic %#08x", m)
	}
	if n := le.Uint32(b[8:]); n != 1 {
		return nil, fmt.Errorf("xattr block spans %d blocks, want 1", n)
	}
	return parseXattrEntries(b[format.XattrHeaderSize:], b)
}

// blockXattrs reads the inode's xattr block, if it has one.
func (fs *FS) blockXattrs(in *inode, ck *checker) ([]rawXattr, error) {
	if in.fileACL == 0 {
		return nil, nil
	}
	if in.fileACL <= fs.first || in.fileACL >= fs.blocks {
		return nil, inodeCorrupt(in.ino, "xattr block %d is outside the file system (%d blocks)", in.fileACL, fs.blocks)
	}
	b := make([]byte, fs.bs)
	if err := fs.readBlock(b, in.fileACL); err != nil {
		return nil, inodeCorrupt(in.ino, "xattr block %d: %v", in.fileACL, err)
	}
	if ck != nil {
		ck.xattrBlock(in, b)
	}
	xs, err := parseXattrBlock(b)
	if err != nil {
		return nil, inodeCorrupt(in.ino, "xattr block %d: %v", in.fileACL, err)
	}
	return xs, nil
}

// inlineXattr returns the value of system.data, the continuation of an
// inline-data inode's content.
func (fs *FS) inlineXattr(in *inode) ([]byte, error) {
	xs, err := fs.ibodyXattrs(in)
	if err != nil {
		return nil, err
	}
	for _, x := range xs {
		if x.index == xattrIndexSystem && x.name == "data" && x.inum == 0 {
			return x.value, nil
		}
	}
	return nil, nil
}

// xattrs returns the inode's attributes with full names, sorted by name.
// system.data, which holds inline data, is not an attribute to users.
func (fs *FS) xattrs(in *inode, ck *checker) ([]tree.Xattr, error) {
	ib, err := fs.ibodyXattrs(in)
	if err != nil {
		return nil, err
	}
	bl, err := fs.blockXattrs(in, ck)
	if err != nil {
		return nil, err
	}
	if len(ib)+len(bl) == 0 {
		return nil, nil
	}
	out := make([]tree.Xattr, 0, len(ib)+len(bl))
	total := 0
	for _, x := range append(ib, bl...) {
		if x.index == xattrIndexSystem && x.name == "data" {
			continue
		}
		prefix, ok := xattrPrefix(x.index)
		if !ok {
			return nil, inodeCorrupt(in.ino, "xattr %q has unknown name index %d", x.name, x.index)
		}
		v := x.value
		if x.inum != 0 {
			total += int(x.size)
			if total > maxXattrTotal {
				return nil, inodeCorrupt(in.ino, "xattrs: more than %d bytes of values", maxXattrTotal)
			}
			if v, err = fs.eaInodeValue(in, x, ck); err != nil {
				return nil, err
			}
		}
		if x.index == xattrIndexACLAccess || x.index == xattrIndexACLDefault {
			if v, err = aclToXattr(v); err != nil {
				return nil, inodeCorrupt(in.ino, "xattr %s: %v", prefix, err)
			}
		}
		out = append(out, tree.Xattr{Name: prefix + x.name, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, inodeCorrupt(in.ino, "xattr %s appears twice", out[i].Name)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// eaInodeValue reads a value stored in its own inode (ea_inode).
func (fs *FS) eaInodeValue(owner *inode, x rawXattr, ck *checker) ([]byte, error) {
	if int64(x.size) > fs.size {
		return nil, inodeCorrupt(owner.ino, "xattr %q: value of %d bytes is larger than the image", x.name, x.size)
	}
	if x.inum == owner.ino {
		return nil, inodeCorrupt(owner.ino, "xattr %q value inode is the inode itself", x.name)
	}
	vin, err := fs.readInode(x.inum)
	if err != nil {
		return nil, inodeCorrupt(owner.ino, "xattr %q value inode: %v", x.name, err)
	}
	if vin.flags&format.InodeEAInodeFl == 0 || vin.inline() || vin.size != uint64(x.size) {
		return nil, inodeCorrupt(owner.ino, "xattr %q: inode %d is not its %d-byte value inode", x.name, x.inum, x.size)
	}
	if ck != nil {
		ck.eaInode(vin)
	}
	r, err := fs.openInode(vin)
	if err != nil {
		return nil, err
	}
	v := make([]byte, x.size)
	if _, err := io.ReadFull(r, v); err != nil {
		return nil, inodeCorrupt(owner.ino, "xattr %q value inode %d: %v", x.name, x.inum, err)
	}
	return v, nil
}

// POSIX ACL tags.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclToXattr converts an ACL from ext4's compact on-disk form (version 1,
// 4-byte entries for the owner, group, mask and other, 8-byte entries for
// named users and groups) to the form getxattr returns (version 2, every
// entry 8 bytes, -1 as the id of unnamed entries).
func aclToXattr(b []byte) ([]byte, error) {
	if len(b) < 4 || le.Uint32(b) != 1 {
		return nil, fmt.Errorf("not an ext4 ACL (version 1)")
	}
	out := make([]byte, 4, 4+2*len(b))
	le.PutUint32(out, 2)
	for p := b[4:]; len(p) > 0; {
		if len(p) < 4 {
			return nil, fmt.Errorf("truncated ACL entry")
		}
		tag, perm := le.Uint16(p), le.Uint16(p[2:])
		id := uint32(0xFFFFFFFF)
		switch tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			p = p[4:]
		case aclUser, aclGroup:
			if len(p) < 8 {
				return nil, fmt.Errorf("truncated ACL entry")
			}
			id = le.Uint32(p[4:])
			p = p[8:]
		default:
			return nil, fmt.Errorf("unknown ACL tag %#x", tag)
		}
		var e [8]byte
		le.PutUint16(e[0:], tag)
		le.PutUint16(e[2:], perm)
		le.PutUint32(e[4:], id)
		out = append(out, e[:]...)
	}
	return out, nil
}
