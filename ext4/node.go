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

// node is one inode of the image.
type node struct {
	ino    uint32
	entry  *tree.Entry // nil for the root, lost+found and reserved inodes
	mode   uint16      // type and permission bits
	uid    uint32
	gid    uint32
	links  uint32
	size   uint64
	flags  uint32
	ftype  uint8  // directory entry file type
	parent uint32 // directories: inode of ".."

	runs   []run      // logical blocks that need disk blocks, in order
	ext    []extent   // where they went
	tree   [][]uint64 // extent tree blocks by level, leaves first
	xblock uint64     // xattr block, 0 for none
	ibody  []format.Xattr
	xattrs []format.Xattr // in the xattr block
	dir    *dirPlan
	sparse bool // content was scanned: blocks outside runs are zero
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
