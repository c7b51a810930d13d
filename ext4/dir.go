package ext4

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/tree"
)

// dent is one entry of a directory other than "." and "..". It names the
// tree entry rather than holding the name: a million-entry tree has a
// million of them.
type dent struct {
	entry *tree.Entry // nil: the root's lost+found, which the tree lacks
	ino   uint32
	ftype uint8
}

// name is the entry's name in its directory.
func (e *dent) name() string {
	if e.entry == nil {
		return "lost+found"
	}
	return e.entry.Name()
}

// dirPlan is the block layout of a directory. A directory whose entries
// fit in one block is linear; a bigger one gets an htree as e2fsck -D
// builds it: a dx_root block, a level of dx_node blocks when the root
// cannot point at every leaf, then leaves in hash order.
type dirPlan struct {
	ents   []dent // in on-disk order
	parent uint32 // inode of ".."
	htree  bool
	levels uint8    // htree: 0 (root points at leaves) or 1 (root, nodes, leaves)
	nodes  uint32   // htree: dx_node blocks
	starts []int32  // first entry of each entry block (linear: every block; htree: every leaf)
	hashes []uint32 // htree: index hash of each leaf (low bit set when it continues a hash of the previous leaf)
	blocks uint32
}

// dirHashVersion is the hash every htree uses; names hash as signed char,
// as mke2fs on x86 records in s_flags.
const (
	dirHashVersion = format.HashHalfMD4
	dirHashFlags   = format.FlagSignedHash
)

// plan lays out the directory. minBlocks pads a linear directory with
// empty blocks (lost+found); linear forbids an htree (lost+found again,
// which e2fsck expects to be linear).
func (d *dirPlan) plan(seed [16]byte, minBlocks uint32, linear bool) error {
	d.starts = append(d.starts[:0], 0)
	used := 24 // "." and ".."
	for i := range d.ents {
		rl := format.DirRecLen(len(d.ents[i].name()))
		if used+rl > format.DirLeafSpace {
			d.starts = append(d.starts, int32(i))
			used = 0
		}
		used += rl
	}
	if len(d.starts) == 1 || linear {
		d.blocks = max(uint32(len(d.starts)), minBlocks)
		return nil
	}

	d.htree = true
	// The hashes only order the entries and index the leaves; they are
	// not kept per entry.
	type hashed struct {
		dent
		name        string
		hash, minor uint32
	}
	hs := make([]hashed, len(d.ents))
	for i := range d.ents {
		e := &hs[i]
		e.dent, e.name = d.ents[i], d.ents[i].name()
		e.hash, e.minor = format.DirHash([]byte(e.name), dirHashVersion, seed)
	}
	// Names are unique in a directory, so this order is total and any
	// sort gives it; slices.SortFunc rather than sort.Slice, whose
	// reflective swaps were most of planning a million-entry tree.
	slices.SortFunc(hs, func(a, b hashed) int {
		if a.hash != b.hash {
			return cmp.Compare(a.hash, b.hash)
		}
		if a.minor != b.minor {
			return cmp.Compare(a.minor, b.minor)
		}
		return strings.Compare(a.name, b.name)
	})
	d.starts = d.starts[:0]
	d.hashes = d.hashes[:0]
	used = format.DirLeafSpace
	for i := range hs {
		d.ents[i] = hs[i].dent
		rl := format.DirRecLen(len(hs[i].name))
		if used+rl > format.DirLeafSpace {
			h := hs[i].hash
			if i > 0 && hs[i-1].hash == h {
				h |= 1 // lookups of this hash must go on into this leaf
			}
			d.starts = append(d.starts, int32(i))
			d.hashes = append(d.hashes, h)
			used = 0
		}
		used += rl
	}
	leaves := uint32(len(d.starts))
	if leaves > format.DxRootLimit {
		d.levels = 1
		d.nodes = (leaves + format.DxNodeLimit - 1) / format.DxNodeLimit
		if d.nodes > format.DxRootLimit {
			return fmt.Errorf("directory has %d entries, more than a two-level htree holds", len(d.ents))
		}
	}
	d.blocks = 1 + d.nodes + leaves
	return nil
}

// entryRange is the entries of entry block i (a linear block or a leaf).
func (d *dirPlan) entryRange(i int) []dent {
	if i >= len(d.starts) {
		return nil
	}
	end := len(d.ents)
	if i+1 < len(d.starts) {
		end = int(d.starts[i+1])
	}
	return d.ents[d.starts[i]:end]
}

// putEntries fills b from off to the leaf tail with ents, the last one
// spanning the rest; no entries leaves one empty entry.
func putEntries(b []byte, off int, ents []dent) {
	if len(ents) == 0 && off == 0 {
		format.PutDirEntry(b, 0, format.DirLeafSpace, "", 0)
		return
	}
	for i := range ents {
		e := &ents[i]
		name := e.name()
		rl := format.DirRecLen(len(name))
		if i == len(ents)-1 {
			rl = format.DirLeafSpace - off
		}
		off += format.PutDirEntry(b[off:], e.ino, rl, name, e.ftype)
	}
}

// block writes logical block lblk of directory n into b.
func (d *dirPlan) block(b []byte, n *node, lblk uint32, inodeSeed uint32) {
	b = b[:format.BlockSize]
	if !d.htree {
		off := 0
		ents := d.entryRange(int(lblk))
		if lblk == 0 {
			off += format.PutDirEntry(b, n.ino, 12, ".", format.FtDir)
			rl := 12
			if len(ents) == 0 {
				rl = format.DirLeafSpace - off
			}
			off += format.PutDirEntry(b[off:], d.parent, rl, "..", format.FtDir)
		}
		putEntries(b, off, ents)
		format.SetDirLeafTail(b, inodeSeed)
		return
	}
	leaves := uint32(len(d.starts))
	firstLeaf := 1 + d.nodes
	switch {
	case lblk == 0:
		count := leaves
		if d.levels == 1 {
			count = d.nodes
		}
		format.PutDxRoot(b, n.ino, d.parent, dirHashVersion, d.levels, uint16(count))
		for i := range count {
			if d.levels == 0 {
				format.PutDxEntry(b, format.DxRootCountOffset, int(i), d.hashes[i], firstLeaf+i)
			} else {
				format.PutDxEntry(b, format.DxRootCountOffset, int(i), d.hashes[i*format.DxNodeLimit], 1+i)
			}
		}
		format.SetDxTail(b, format.DxRootCountOffset, inodeSeed)
	case lblk < firstLeaf:
		first := (lblk - 1) * format.DxNodeLimit
		count := min(leaves-first, format.DxNodeLimit)
		format.PutDxNode(b, uint16(count))
		for i := range count {
			format.PutDxEntry(b, format.DxNodeCountOffset, int(i), d.hashes[first+i], firstLeaf+first+i)
		}
		format.SetDxTail(b, format.DxNodeCountOffset, inodeSeed)
	default:
		putEntries(b, 0, d.entryRange(int(lblk-firstLeaf)))
		format.SetDirLeafTail(b, inodeSeed)
	}
}
