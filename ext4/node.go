package ext4

import (
	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/tree"
)

// run is a range of logical blocks of an inode that needs disk blocks.
type run struct {
	lblk uint32
	n    uint32
}

// extent maps logical blocks to physical ones.
type extent struct {
	lblk uint32
	n    uint32 // at most format.MaxExtentLen
	pblk uint64
}

// node is one inode of the image. A million-entry tree has a million of
// them, so fields are ordered to leave no padding and what few inodes
// have (xattrs) hangs off a pointer.
type node struct {
	ino    uint32
	mode   uint16 // type and permission bits
	ftype  uint8  // directory entry file type
	sparse bool   // content was scanned: blocks outside runs are zero
	uid    uint32
	gid    uint32
	links  uint32
	flags  uint32
	parent uint32 // directories: inode of ".."
	size   uint64
	entry  *tree.Entry // nil for the root, lost+found and reserved inodes

	runs   []run      // logical blocks that need disk blocks, in order
	ext    []extent   // where they went
	tree   [][]uint64 // extent tree blocks by level, leaves first
	xblock uint64     // xattr block, 0 for none
	xa     *xattrPlan // nil for none
	dir    *dirPlan
}

// xattrPlan is where an inode's xattrs go, sorted.
type xattrPlan struct {
	ibody []format.Xattr // in the inode
	block []format.Xattr // in the xattr block
}

// ibody is the xattrs that fit in n's inode.
func (n *node) ibody() []format.Xattr {
	if n.xa == nil {
		return nil
	}
	return n.xa.ibody
}

// blockXattrs is the xattrs of n's xattr block, nil for none.
func (n *node) blockXattrs() []format.Xattr {
	if n.xa == nil {
		return nil
	}
	return n.xa.block
}

// dataBlocks is how many blocks the node's runs need.
func (n *node) dataBlocks() uint64 {
	var s uint64
	for _, r := range n.runs {
		s += uint64(r.n)
	}
	return s
}

// treeBlocks is how many blocks the extent tree needs beyond i_block.
func (n *node) treeBlocks() uint64 {
	var s uint64
	for _, l := range n.tree {
		s += uint64(len(l))
	}
	return s
}

// totalBlocks is what i_blocks counts: data, extent tree and xattr block.
func (n *node) totalBlocks() uint64 {
	t := n.dataBlocks() + n.treeBlocks()
	if n.xblock != 0 {
		t++
	}
	return t
}

// extentTreeShape returns how many blocks each level of an extent tree
// over e extents needs, leaves first; nil when i_block holds them all.
func extentTreeShape(e int) []int {
	var levels []int
	for e > format.ExtentsInInode {
		e = (e + format.ExtentsInBlock - 1) / format.ExtentsInBlock
		levels = append(levels, e)
	}
	return levels
}

// isDir reports whether the node is a directory.
func (n *node) isDir() bool { return n.mode&format.ModeTypeMask == format.ModeDir }
