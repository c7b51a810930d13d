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
// them, nearly all files of one run of blocks that get one extent: those
// keep that extent inline (nblk, pblk) and derive everything else from
// their entry. Directories, files with several runs or extents, xattrs and
// the inodes without an entry hang what they need off more.
type node struct {
	entry *tree.Entry // nil for the root, lost+found and reserved inodes
	more  *nodeMore   // nil for the common inode
	pblk  uint64      // more nil: first block of the one extent, 0 before allocation
	nblk  uint32      // more nil: blocks of the one run, from logical block 0
	ino   uint32
	links uint32
	mode  uint16 // type and permission bits
}

// nodeMore is what few inodes have. An inode with more keeps its runs and
// extents here rather than inline.
type nodeMore struct {
	runs   []run      // logical blocks that need disk blocks, in order
	ext    []extent   // where they went
	tree   [][]uint64 // extent tree blocks by level, leaves first
	size   uint64     // inodes without an entry that are not directories
	xblock uint64     // xattr block, 0 for none
	xa     *xattrPlan // nil for none
	dir    *dirPlan   // nil for all but directories
}

// extra returns n's nodeMore, moving an inline run and extent into it.
func (n *node) extra() *nodeMore {
	if n.more == nil {
		n.more = &nodeMore{}
		if n.nblk > 0 {
			n.more.runs = []run{{0, n.nblk}}
		}
		if n.pblk != 0 {
			n.more.ext = []extent{{0, n.nblk, n.pblk}}
		}
		n.nblk, n.pblk = 0, 0
	}
	return n.more
}

// setRuns sets the logical blocks of n that need disk blocks.
func (n *node) setRuns(runs []run) {
	if n.more == nil && len(runs) <= 1 && (len(runs) == 0 || runs[0].lblk == 0) {
		n.nblk = 0
		if len(runs) == 1 {
			n.nblk = runs[0].n
		}
		return
	}
	n.extra().runs = runs
}

// dir is n's directory plan, nil for anything but a directory.
func (n *node) dir() *dirPlan {
	if n.more == nil {
		return nil
	}
	return n.more.dir
}

// xblock is n's xattr block, 0 for none.
func (n *node) xblock() uint64 {
	if n.more == nil {
		return 0
	}
	return n.more.xblock
}

// extents is how many extents n's blocks went to.
func (n *node) extents() int {
	if n.more != nil {
		return len(n.more.ext)
	}
	if n.pblk != 0 {
		return 1
	}
	return 0
}

// extent is n's extent i.
func (n *node) extent(i int) extent {
	if n.more != nil {
		return n.more.ext[i]
	}
	return extent{0, n.nblk, n.pblk}
}

// tree is n's extent tree blocks by level, leaves first; nil when i_block
// holds every extent.
func (n *node) tree() [][]uint64 {
	if n.more == nil {
		return nil
	}
	return n.more.tree
}

// size is i_size.
func (n *node) size() uint64 {
	switch {
	case n.dir() != nil:
		return uint64(n.more.dir.blocks) * BlockSize
	case n.entry == nil:
		if n.more == nil {
			return 0
		}
		return n.more.size
	case n.mode&format.ModeTypeMask == format.ModeSymlink:
		return uint64(len(n.entry.Target))
	}
	return uint64(n.entry.Size)
}

// ftype is n's directory entry file type.
func (n *node) ftype() uint8 {
	switch n.mode & format.ModeTypeMask {
	case format.ModeDir:
		return format.FtDir
	case format.ModeSymlink:
		return format.FtSymlink
	}
	return format.FtRegular
}

// fastSymlink reports whether n is a symlink whose target lives in i_block.
func (n *node) fastSymlink() bool {
	return n.mode&format.ModeTypeMask == format.ModeSymlink && len(n.entry.Target) < 60
}

// flags is i_flags: extents for all but fast symlinks and the resize
// inode, and an index for htree directories.
func (n *node) flags() uint32 {
	switch {
	case n.ino == format.ResizeIno, n.fastSymlink():
		return 0
	case n.dir() != nil && n.more.dir.htree:
		return format.InodeExtentsFl | format.InodeIndexFl
	}
	return format.InodeExtentsFl
}

// xattrPlan is where an inode's xattrs go, sorted.
type xattrPlan struct {
	ibody []format.Xattr // in the inode
	block []format.Xattr // in the xattr block
}

// ibody is the xattrs that fit in n's inode.
func (n *node) ibody() []format.Xattr {
	if n.more == nil || n.more.xa == nil {
		return nil
	}
	return n.more.xa.ibody
}

// blockXattrs is the xattrs of n's xattr block, nil for none.
func (n *node) blockXattrs() []format.Xattr {
	if n.more == nil || n.more.xa == nil {
		return nil
	}
	return n.more.xa.block
}

// dataBlocks is how many blocks the node's runs need.
func (n *node) dataBlocks() uint64 {
	if n.more == nil {
		return uint64(n.nblk)
	}
	var s uint64
	for _, r := range n.more.runs {
		s += uint64(r.n)
	}
	return s
}

// treeBlocks is how many blocks the extent tree needs beyond i_block.
func (n *node) treeBlocks() uint64 {
	var s uint64
	for _, l := range n.tree() {
		s += uint64(len(l))
	}
	return s
}

// totalBlocks is what i_blocks counts: data, extent tree and xattr block.
func (n *node) totalBlocks() uint64 {
	t := n.dataBlocks() + n.treeBlocks()
	if n.xblock() != 0 {
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
