package ext4

import (
	"fmt"
	"math"
	"runtime"
	"strings"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/tree"
)

// Layout is a planned image: every inode, block and descriptor is decided;
// WriteTo only produces the bytes.
type Layout struct {
	opts     Options
	geo      *geometry
	nodes    []*node // by inode number; nil for free inodes and default reserved ones
	maxIno   uint32  // every inode up to this one is in use
	used     []brange
	dind     uint64 // resize inode's double-indirect block
	gds      []format.GroupDesc
	free     uint64 // free blocks
	rblocks  uint64 // blocks reserved for root
	csumSeed uint32
	size     int64
	content  uint64   // blocks the tree itself needs, for reports
	ext      []extent // scratch of allocNode
}

// Size is the image size in bytes.
func (l *Layout) Size() int64 { return l.size }

// Blocks is the number of file system blocks (Size may be larger when an
// explicit size leaves a tail mke2fs would not use as a group).
func (l *Layout) Blocks() uint64 { return l.geo.blocks }

// Inodes is the file system's inode count and the number in use.
func (l *Layout) Inodes() (total, used uint64) { return l.geo.inodes(), uint64(l.maxIno) }

// FreeBlocks is the number of free blocks in the planned file system.
func (l *Layout) FreeBlocks() uint64 { return l.free }

// maxTime is the latest time an inode can hold (epoch bits 3).
const maxTime = 3<<32 | math.MaxInt32

// Plan lays out t as an ext4 image. It reads the content of regular files
// of at least Options.SparseMin bytes to find all-zero blocks (holes),
// unless their entries list their data blocks (tree.Entry.Data); it reads
// nothing else. Errors name the entry's path.
func Plan(t *tree.Tree, opts Options) (*Layout, error) {
	if opts.BlockSize != 0 && opts.BlockSize != BlockSize {
		return nil, fmt.Errorf("ext4: block size %d not supported, use 4096", opts.BlockSize)
	}
	if len(opts.Label) > 16 {
		return nil, fmt.Errorf("ext4: label %q is %d bytes, at most 16 fit", opts.Label, len(opts.Label))
	}
	if opts.Size < 0 || opts.Size%BlockSize != 0 {
		return nil, fmt.Errorf("ext4: size %d must be a multiple of 4096 (block size), for example %d", opts.Size, (opts.Size/BlockSize+1)*BlockSize)
	}
	if opts.Time < 0 || opts.Time > maxTime {
		return nil, fmt.Errorf("ext4: time %d is outside what ext4 stores (0 to %d)", opts.Time, int64(maxTime))
	}
	if opts.Headroom < 0 || opts.HeadroomPercent < 0 || opts.ReservedPercent < 0 || opts.ReservedPercent > 50 || opts.InodeHeadroom < 0 {
		return nil, fmt.Errorf("ext4: headroom, reserved percent (at most 50) and inode headroom must not be negative")
	}
	if opts.RootMode&^tree.ModeMask != 0 {
		return nil, fmt.Errorf("ext4: root mode %#o has bits beyond %#o", opts.RootMode, tree.ModeMask)
	}
	l := &Layout{opts: opts}
	var sb format.Superblock
	sb.UUID = opts.UUID
	l.csumSeed = sb.CsumSeed()
	if err := l.build(t); err != nil {
		return nil, err
	}
	if err := l.size1(); err != nil {
		return nil, err
	}
	l.describeGroups()
	return l, nil
}

// build makes the nodes of every inode and plans directories and xattrs;
// none of it depends on the image size.
func (l *Layout) build(t *tree.Tree) error {
	root, lpf := l.reservedDirs(t)
	if err := l.addEntries(t, root, lpf); err != nil {
		return err
	}
	if uint64(l.maxIno) > maxInodeCount {
		return &InodesError{Need: uint64(l.maxIno), Max: maxInodeCount}
	}
	if err := l.scanSparse(); err != nil {
		return err
	}
	if err := l.planDirs(); err != nil {
		return err
	}
	if l.opts.Journal {
		l.nodes[format.JournalIno] = &node{
			ino:   format.JournalIno,
			mode:  format.ModeRegular | 0o600, // as mke2fs makes it
			links: 1,                          // reserved inodes have no name but count one link
			more:  &nodeMore{},
		}
	}
	for _, n := range l.nodes {
		if n != nil {
			l.content += n.dataBlocks()
			if len(n.blockXattrs()) > 0 {
				l.content++
			}
		}
	}
	return nil
}

// reservedDirs makes the root and lost+found, the directories every ext4
// file system has at fixed inode numbers, and names lost+found in the root
// unless the tree has its own.
func (l *Layout) reservedDirs(t *tree.Tree) (root, lpf *node) {
	o := &l.opts
	rootMode := o.RootMode
	if rootMode == 0 {
		rootMode = defaultRootMode
	}
	l.nodes = make([]*node, format.FirstIno+1, format.FirstIno+1+len(t.Entries))
	root = &node{
		ino:   format.RootIno,
		mode:  format.ModeDir | uint16(rootMode),
		links: 2,                                                // "." and its own "..": subdirectories add theirs
		more:  &nodeMore{dir: &dirPlan{parent: format.RootIno}}, // the root is its own parent
	}
	lpf = &node{
		ino:   format.LostFoundIno,
		mode:  format.ModeDir | 0o700, // as mke2fs makes it
		links: 2,                      // name in the root and "."
		more:  &nodeMore{dir: &dirPlan{parent: format.RootIno}},
	}
	l.nodes[format.RootIno], l.nodes[format.LostFoundIno] = root, lpf
	if e := t.Get("lost+found"); e == nil {
		root.more.dir.ents = append(root.more.dir.ents, dent{ino: format.LostFoundIno, ftype: format.FtDir}) // no entry: lost+found
		root.links++
	}
	return root, lpf
}

// linkTargets numbers the regular files that hard links of t name, and
// counts the inodes t needs. Inode numbers follow tree order; a hard link
// may name a file that comes later, so its target is numbered before any
// entry is added. Only trees with hard links pay for the map: a
// million-entry tree has a million files.
func linkTargets(t *tree.Tree) (targets map[string]uint32, inodes int) {
	for _, e := range t.Entries {
		if e.Type != tree.Hardlink {
			inodes++
			continue
		}
		if targets == nil {
			targets = map[string]uint32{}
		}
		targets[e.Target] = 0
	}
	if targets == nil {
		return nil, inodes
	}
	next := uint32(format.FirstIno + 1)
	for _, e := range t.Entries {
		switch {
		case e.Type == tree.Hardlink, e.HasPath("lost+found") && e.Type == tree.Dir:
		case e.Type == tree.File:
			if _, ok := targets[e.Path()]; ok {
				targets[e.Path()] = next
			}
			next++
		default:
			next++
		}
	}
	return targets, inodes
}

// addEntries gives each entry of t an inode (a hard link, a name for its
// target's) and a name in its parent directory, and sets l.maxIno.
func (l *Layout) addEntries(t *tree.Tree, root, lpf *node) error {
	dirs := map[string]*node{"": root}
	targets, inodes := linkTargets(t)
	linked := map[string]*node{}
	// The nodes come from one slab rather than an allocation each.
	slab := make([]node, inodes)
	extraLinks := map[string]uint32{}
	next := uint32(format.FirstIno + 1)
	// Entries come in tree order, most of them after a sibling: the last
	// parent found saves looking its path up again.
	lastParent, pd := "", root
	for _, e := range t.Entries {
		if err := checkName(e); err != nil {
			return err
		}
		if parent := e.Parent(); parent != lastParent || pd == nil {
			lastParent, pd = parent, dirs[parent]
		}
		if pd == nil {
			return fmt.Errorf("%s: parent directory %q is not in the tree (or is not a directory)", e.Path(), e.Parent())
		}
		if e.Type == tree.Hardlink {
			ino := targets[e.Target]
			if ino == 0 {
				return fmt.Errorf("%s: hard link target %q is not a regular file in the tree", e.Path(), e.Target)
			}
			extraLinks[e.Target]++
			if extraLinks[e.Target] >= format.LinkMax {
				return fmt.Errorf("%s: more than %d hard links to %s", e.Path(), format.LinkMax, e.Target)
			}
			pd.more.dir.ents = append(pd.more.dir.ents, dent{entry: e, ino: ino, ftype: format.FtRegular})
			continue
		}
		n := &slab[0]
		slab = slab[1:]
		*n = node{entry: e, links: 1 /* hard links add theirs */}
		if e.HasPath("lost+found") {
			if e.Type != tree.Dir {
				return fmt.Errorf("%s: must be a directory (ext4 keeps lost+found as inode 11)", e.Path())
			}
			n = lpf
			n.entry = e
		} else {
			n.ino = next
			next++
		}
		if err := n.setType(e); err != nil {
			return err
		}
		switch e.Type {
		case tree.Dir:
			n.more.dir.parent = pd.ino
			dirs[e.Path()] = n
			pd.links++
		case tree.File:
			if targets != nil {
				if _, ok := targets[e.Path()]; ok {
					linked[e.Path()] = n
				}
			}
		}
		ibody, block, err := splitXattrs(e)
		if err != nil {
			return err
		}
		if ibody != nil || block != nil {
			n.extra().xa = &xattrPlan{ibody: ibody, block: block}
		}
		pd.more.dir.ents = append(pd.more.dir.ents, dent{entry: e, ino: n.ino, ftype: n.ftype()})
		if n != lpf {
			l.nodes = append(l.nodes, n) // index n.ino
		}
	}
	for p, k := range extraLinks {
		linked[p].links += k
	}
	l.maxIno = next - 1
	return nil
}

// setType sets what n's inode holds by e's type: its mode and the runs
// of blocks its content needs.
func (n *node) setType(e *tree.Entry) error {
	perm := uint16(e.Mode & tree.ModeMask)
	switch e.Type {
	case tree.Dir:
		n.mode = format.ModeDir | perm
		n.links = 2
		n.extra().dir = &dirPlan{}
	case tree.File:
		if e.Size < 0 {
			return fmt.Errorf("%s: negative size %d", e.Path(), e.Size)
		}
		if e.Content == nil && e.Size > 0 {
			return fmt.Errorf("%s: regular file of %d bytes has no content", e.Path(), e.Size)
		}
		n.mode = format.ModeRegular | perm
		if nb := ceilDiv(uint64(e.Size), BlockSize); nb > 0 {
			if nb > math.MaxUint32-1 {
				return fmt.Errorf("%s: %d bytes is larger than ext4 allows", e.Path(), e.Size)
			}
			n.nblk = uint32(nb)
		}
	case tree.Symlink:
		if e.Target == "" || len(e.Target) >= BlockSize || strings.IndexByte(e.Target, 0) >= 0 {
			return fmt.Errorf("%s: symlink target must be 1 to 4095 bytes without NUL", e.Path())
		}
		n.mode = format.ModeSymlink | perm
		if !n.fastSymlink() { // a fast symlink's target lives in i_block
			n.nblk = 1
		}
	default:
		return fmt.Errorf("%s: entry type %v cannot be written to ext4", e.Path(), e.Type)
	}
	return nil
}

// planDirs lays out each directory's blocks, now that every name is in it.
// Directories are planned apart from each other (hashing and sorting the
// names of a large one), so on every core; the first error in inode order
// is the one returned, as when they were planned one after another.
func (l *Layout) planDirs() error {
	var dirs []*node
	for _, n := range l.nodes {
		if n != nil && n.dir() != nil {
			dirs = append(dirs, n)
		}
	}
	errs := make([]error, len(dirs))
	par.Each(len(dirs), runtime.GOMAXPROCS(0), nil, func(_, k int) {
		errs[k] = l.planDir(dirs[k])
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// planDir lays out directory n's blocks.
func (l *Layout) planDir(n *node) error {
	if n.links > format.LinkMax {
		n.links = 1 // dir_nlink: too many subdirectories to count
	}
	lpfDir := n.ino == format.LostFoundIno
	minBlocks := uint32(1)
	if lpfDir {
		minBlocks = 4 // mke2fs makes lost+found 16 KiB so e2fsck can use it without allocating
	}
	if err := n.more.dir.plan(l.opts.HashSeed, minBlocks, lpfDir); err != nil {
		p := "/"
		if n.entry != nil {
			p = n.entry.Path()
		}
		return fmt.Errorf("%s: %w", p, err)
	}
	n.more.runs = []run{{0, n.more.dir.blocks}}
	return nil
}

// checkName refuses names ext4 cannot hold in a directory.
// checkName checks the last element of e's path, building the path only
// for an error.
func checkName(e *tree.Entry) error {
	switch name := e.Name(); {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q: invalid file name", e.Path())
	case len(name) > format.NameMax:
		return fmt.Errorf("%s: name is %d bytes, ext4 allows at most %d", e.Path(), len(name), format.NameMax)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%q: name contains NUL", e.Path())
	}
	return nil
}

// splitXattrs sorts an entry's xattrs and puts as many as fit, in order,
// in the inode; the rest go to one xattr block.
func splitXattrs(e *tree.Entry) (ibody, block []format.Xattr, err error) {
	xs := e.Xattrs()
	if len(xs) == 0 {
		return nil, nil, nil
	}
	all := make([]format.Xattr, len(xs))
	for i, x := range xs {
		idx, name, err := format.SplitXattrName(x.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", e.Path(), err)
		}
		all[i] = format.Xattr{Index: idx, Name: name, Value: x.Value}
	}
	sortXattrs(all)
	for i := 1; i < len(all); i++ {
		if all[i].Index == all[i-1].Index && all[i].Name == all[i-1].Name {
			return nil, nil, fmt.Errorf("%s: xattr %q appears twice", e.Path(), xs[i].Name)
		}
	}
	used, split := 4, len(all) // 4: end-of-entries marker
	for i := range all {
		c := format.XattrCost(&all[i])
		if used+c > format.IbodyXattrSpace {
			split = i
			break
		}
		used += c
	}
	ibody, block = all[:split], all[split:]
	need := 4
	for i := range block {
		need += format.XattrCost(&block[i])
	}
	if len(block) > 0 && need > format.BlockXattrSpace {
		return nil, nil, fmt.Errorf("%s: xattrs need %d bytes, more than the %d of one xattr block", e.Path(), need, format.BlockXattrSpace)
	}
	if len(block) == 0 {
		block = nil
	}
	return ibody, block, nil
}

func sortXattrs(xs []format.Xattr) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && format.XattrLess(&xs[j], &xs[j-1]); j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// minInodes is how many inodes a file system of the given blocks needs.
func (l *Layout) minInodes(blocks uint64) uint64 {
	need := uint64(l.maxIno) + uint64(l.opts.InodeHeadroom)
	bpi := l.opts.BytesPerInode
	if bpi == 0 {
		bpi = defaultBytesPerInode
	}
	if bpi > 0 {
		need = max(need, blocks*BlockSize/uint64(bpi))
	}
	return need
}

// headroomBlocks is the free space auto sizing leaves.
func (l *Layout) headroomBlocks() uint64 {
	h := ceilDiv(uint64(l.opts.Headroom), BlockSize)
	p := uint64(math.Ceil(float64(l.content) * l.opts.HeadroomPercent / 100))
	return max(h, p)
}

func (l *Layout) reservedBlocks(blocks uint64) uint64 {
	return uint64(float64(blocks) * l.opts.ReservedPercent / 100)
}

// size1 picks the block count and allocates every block.
func (l *Layout) size1() error {
	if l.opts.Size > 0 {
		blocks := uint64(l.opts.Size / BlockSize)
		for {
			g, gerr := newGeometry(blocks, l.minInodes(blocks), l.opts.Journal)
			if gerr != nil && gerr.tooSmall && blocks > bpg {
				blocks = (blocks - 1) / bpg * bpg // drop the short last group, as mke2fs does
				continue
			}
			if gerr != nil && gerr.maxInodes != 0 {
				return &InodesError{Need: l.minInodes(blocks), Max: gerr.maxInodes}
			}
			if gerr == nil && l.allocate(g) == 0 {
				l.size = l.opts.Size
				return nil
			}
			need, err := l.autoBlocks(0)
			if err != nil {
				return err
			}
			return &NoSpaceError{Need: int64(need * BlockSize), Size: l.opts.Size}
		}
	}
	blocks, err := l.autoBlocks(l.headroomBlocks())
	if err != nil {
		return err
	}
	l.size = int64(blocks * BlockSize)
	return nil
}

// autoAlign keeps automatic sizes a whole number of MiB.
const autoAlign = (1 << 20) / BlockSize

// autoBlocks finds the smallest MiB-aligned block count that holds the
// tree with headroom free blocks, leaving it allocated.
func (l *Layout) autoBlocks(headroom uint64) (uint64, error) {
	blocks := ceilDiv(l.content+headroom+64, autoAlign) * autoAlign
	for range 200 {
		g, gerr := newGeometry(blocks, l.minInodes(blocks), l.opts.Journal)
		if gerr != nil {
			if gerr.maxInodes != 0 {
				groups := ceilDiv(l.minInodes(blocks), maxIPG)
				if uint64(ceilDiv(blocks, bpg)) >= groups {
					return 0, &InodesError{Need: l.minInodes(blocks), Max: gerr.maxInodes}
				}
				blocks = groups * bpg
			} else {
				blocks += autoAlign
			}
			continue
		}
		short := l.allocate(g)
		want := headroom + l.reservedBlocks(blocks)
		if short == 0 && l.free >= want {
			return blocks, nil
		}
		grow := short + want - min(want, l.free)
		blocks += max(ceilDiv(grow, autoAlign), 1) * autoAlign
	}
	return 0, fmt.Errorf("ext4: could not size the image (tree needs %d blocks)", l.content)
}

// allocate places every node's blocks in geometry g and records the
// result in l. It returns how many blocks did not fit.
func (l *Layout) allocate(g *geometry) uint64 {
	l.geo = g
	a := newAllocator(g)
	l.dind = 0
	a.alloc(1, func(s, _ uint64) { l.dind = s })
	if jn := l.nodes[format.JournalIno]; jn != nil {
		jn.more.runs = []run{{0, g.journal}}
		jn.more.size = uint64(g.journal) * BlockSize
		l.allocNode(a, jn)
	}
	for _, n := range l.nodes {
		if n != nil && n.ino != format.JournalIno {
			l.allocNode(a, n)
		}
	}
	l.used = mergeRanges(append(append([]brange(nil), g.fixed...), a.used...))
	var used uint64
	for _, r := range l.used {
		used += r.end - r.start
	}
	l.free = g.blocks - min(used, g.blocks)
	l.rblocks = l.reservedBlocks(g.blocks)
	return a.short
}

// allocNode gives n its xattr block, its data blocks and its extent tree
// blocks, in that order.
func (l *Layout) allocNode(a *allocator, n *node) {
	var xblock uint64
	if len(n.blockXattrs()) > 0 {
		a.alloc(1, func(s, _ uint64) { xblock = s })
	}
	var one [1]run
	runs := one[:0]
	if n.more != nil {
		runs = n.more.runs
	} else if n.nblk > 0 {
		one[0] = run{0, n.nblk}
		runs = one[:]
	}
	ext := l.ext[:0]
	for _, r := range runs {
		lblk := r.lblk
		a.alloc(uint64(r.n), func(s, k uint64) {
			for k > 0 {
				m := min(k, format.MaxExtentLen)
				ext = append(ext, extent{lblk: lblk, n: uint32(m), pblk: s})
				lblk += uint32(m)
				s += m
				k -= m
			}
		})
	}
	l.ext = ext
	if n.more == nil {
		n.pblk = 0
		if len(ext) == 0 {
			return
		}
		if len(ext) == 1 && ext[0].n == n.nblk {
			n.pblk = ext[0].pblk // the common case: one run, one extent
			return
		}
		n.extra() // several extents after all
	}
	m := n.more
	m.xblock = xblock
	m.ext = append(m.ext[:0], ext...)
	m.tree = nil
	shape := extentTreeShape(len(m.ext))
	if shape == nil {
		return
	}
	m.tree = make([][]uint64, len(shape))
	for lvl, cnt := range shape {
		a.alloc(uint64(cnt), func(s, k uint64) {
			for i := range k {
				m.tree[lvl] = append(m.tree[lvl], s+i)
			}
		})
	}
}
