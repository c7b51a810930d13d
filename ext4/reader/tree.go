package reader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/internetarchive/olimage/internal/par"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/tree"
)

// Limits on paths: one path, and all paths of a tree together.
const maxPathLen = 1 << 15

// lostFound is the directory mke2fs and olimage create at the root.
const lostFound = "lost+found"

// content is a regular file's content in the image. It re-reads the
// inode on every Open, so a tree holds no file data.
type content struct {
	fs  *FS
	ino uint32
}

func (c *content) Open() (io.ReadCloser, error) {
	in, err := c.fs.readInode(c.ino)
	if err != nil {
		return nil, err
	}
	if !in.isReg() {
		return nil, inodeCorrupt(c.ino, "not a regular file")
	}
	return c.fs.openInode(in)
}

// Inode is the inode number behind the content, for callers that group
// hard links.
func (c *content) Inode() uint32 { return c.ino }

// entry builds the tree entry for inode in at path p, set with ps.
// Special files (devices, fifos, sockets), which a tree cannot hold, give
// nil.
func (fs *FS) entry(in *inode, p string, ck *checker, ps *tree.Paths) (*tree.Entry, error) {
	e := &tree.Entry{
		Mode:    uint32(in.mode) & tree.ModeMask,
		UID:     in.uid,
		GID:     in.gid,
		ModTime: in.mtime,
	}
	ps.Set(e, p)
	switch in.typ() {
	case format.ModeDir:
		e.Type = tree.Dir
	case format.ModeRegular:
		e.Type = tree.File
		if int64(in.size) < 0 {
			return nil, inodeCorrupt(in.ino, "size %d is too large", in.size)
		}
		e.Size = int64(in.size)
		e.Content = &content{fs: fs, ino: in.ino}
		if in.links > 1 {
			e.SetLinkKey("inode:" + strconv.FormatUint(uint64(in.ino), 10))
		}
	case format.ModeSymlink:
		e.Type = tree.Symlink
		t, err := fs.symlinkTarget(in)
		if err != nil {
			return nil, err
		}
		e.Target = t
	case format.ModeFifo, format.ModeChar, format.ModeBlock, format.ModeSocket:
		return nil, nil
	default:
		return nil, inodeCorrupt(in.ino, "unknown file type in mode %#o", in.mode)
	}
	xs, err := fs.xattrs(in, ck)
	if err != nil {
		return nil, err
	}
	e.SetXattrs(xs)
	return e, nil
}

// checkName rejects names no path may contain.
func checkName(name []byte) error {
	if len(name) == 0 || bytes.Equal(name, []byte(".")) || bytes.Equal(name, []byte("..")) {
		return fmt.Errorf("bad name %q", name)
	}
	if i := bytes.IndexAny(name, "/\x00"); i >= 0 {
		return fmt.Errorf("name %q contains %q", name, name[i])
	}
	return nil
}

// walker visits every directory reachable from the root once.
type walker struct {
	fs      *FS
	ctx     context.Context
	ck      *checker
	budget  dirBudget
	paths   int64 // bytes of paths left
	dirs    map[uint32]string
	entries []*tree.Entry
	names   tree.Paths // sets the entries' paths
	// onEntry, if set, sees every name (also of special files).
	onEntry func(parent *inode, name string, ino uint32, ftype uint8, in *inode, path string)
}

func (fs *FS) newWalker(ctx context.Context, ck *checker) *walker {
	return &walker{
		fs:     fs,
		ctx:    ctx,
		ck:     ck,
		budget: dirBudget{left: fs.size},
		paths:  fs.size + 1<<20,
		dirs:   map[uint32]string{},
	}
}

type dirItem struct {
	in     *inode
	path   string
	parent uint32
}

// walk reads the whole tree below the root.
func (w *walker) walk() error {
	fs := w.fs
	root, err := fs.readInode(format.RootIno)
	if err != nil {
		return err
	}
	if !root.isDir() {
		return inodeCorrupt(format.RootIno, "root is not a directory (mode %#o)", root.mode)
	}
	w.dirs[format.RootIno] = ""
	stack := []dirItem{{root, "", format.RootIno}}
	for len(stack) > 0 {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var sub []dirItem
		seenDot := 0
		names := map[string]bool{}
		seen := 0
		err := fs.readDir(d.in, &w.budget, w.ck, func(ino uint32, nameb []byte, ftype uint8) error {
			// A directory can hold millions of names.
			if seen++; seen%4096 == 0 {
				if err := w.ctx.Err(); err != nil {
					return err
				}
			}
			if string(nameb) == "." || string(nameb) == ".." {
				seenDot++
				if w.ck != nil {
					w.ck.dotEntry(d.in, string(nameb), ino, d.parent, d.path)
				}
				return nil
			}
			if err := checkName(nameb); err != nil {
				return inodeCorrupt(d.in.ino, "directory %q: %v", d.path, err)
			}
			name := string(nameb)
			if names[name] {
				return inodeCorrupt(d.in.ino, "directory %q: name %q appears twice", d.path, name)
			}
			names[name] = true
			p := name
			if d.path != "" {
				p = d.path + "/" + name
			}
			if len(p) > maxPathLen {
				return inodeCorrupt(d.in.ino, "path %q... is longer than %d bytes", p[:64], maxPathLen)
			}
			w.paths -= int64(len(p))
			if w.paths < 0 {
				return inodeCorrupt(d.in.ino, "paths total more bytes than the image (directory loop?)")
			}
			in, err := fs.readInode(ino)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if in.mode == 0 || in.links == 0 {
				return fmt.Errorf("%s: %w", p, inodeCorrupt(ino, "directory entry names an unused inode (mode %#o, %d links)", in.mode, in.links))
			}
			if w.onEntry != nil {
				w.onEntry(d.in, name, ino, ftype, in, p)
			}
			e, err := fs.entry(in, p, w.ck, &w.names)
			if err != nil {
				if w.ck != nil {
					w.ck.addErr(err, p)
					return nil
				}
				return fmt.Errorf("%s: %w", p, err)
			}
			if e == nil {
				return nil
			}
			if e.Type == tree.Dir {
				if prev, ok := w.dirs[ino]; ok {
					return fmt.Errorf("%s: %w", p, inodeCorrupt(ino, "directory reachable as %q and as %q (loop or hard-linked directory)", "/"+prev, "/"+p))
				}
				w.dirs[ino] = p
				sub = append(sub, dirItem{in, p, d.in.ino})
			}
			w.entries = append(w.entries, e)
			return nil
		})
		if err != nil {
			if w.ck == nil {
				return err
			}
			w.ck.addErr(err, d.path)
		}
		if seenDot < 2 && !d.in.inline() && err == nil {
			derr := inodeCorrupt(d.in.ino, "directory %q lacks \".\" or \"..\"", d.path)
			if w.ck == nil {
				return derr
			}
			w.ck.addErr(derr, d.path)
		}
		// Visit subdirectories in name order, so errors are reproducible.
		sort.Slice(sub, func(i, j int) bool { return sub[i].path > sub[j].path })
		stack = append(stack, sub...)
	}
	return nil
}

// Tree reads every path of the file system into a tree. A lost+found at
// the root that is empty is left out (mke2fs and olimage always make
// one); a non-empty one is included with its contents. Device nodes,
// fifos and sockets, which a tree cannot represent, are left out. Regular
// files with several names are grouped with LinkKey and normalised, so
// the first name in tree order is the File and the others are Hardlinks
// to it. With digests, every file's content is read and its sha256 set.
func (fs *FS) Tree(ctx context.Context, digests bool) (*tree.Tree, error) {
	w := fs.newWalker(ctx, nil)
	if err := w.walk(); err != nil {
		return nil, err
	}
	entries := dropEmptyLostFound(w.entries)
	t, err := tree.New(entries)
	if err != nil {
		return nil, err
	}
	t.Normalize()
	if digests {
		if err := fs.Digest(ctx, t.Entries); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func dropEmptyLostFound(entries []*tree.Entry) []*tree.Entry {
	hasChild := false
	idx := -1
	for i, e := range entries {
		if e.HasPath(lostFound) && e.Type == tree.Dir {
			idx = i
		}
		if e.Top() == lostFound && e.Parent() != "" {
			hasChild = true
		}
	}
	if idx < 0 || hasChild {
		return entries
	}
	return append(entries[:idx:idx], entries[idx+1:]...)
}

// Digest reads the content of every file of entries that this file system
// supplied (once per inode) in parallel and sets Digest on them and on
// their hard links among entries.
func (fs *FS) Digest(ctx context.Context, entries []*tree.Entry) error {
	byIno := map[uint32][]*tree.Entry{}
	var inos []uint32
	for _, e := range entries {
		c, ok := e.Content.(*content)
		if !ok {
			continue
		}
		if _, seen := byIno[c.ino]; !seen {
			inos = append(inos, c.ino)
		}
		byIno[c.ino] = append(byIno[c.ino], e)
	}
	// Read in inode order, which follows the disk layout of most images.
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var firstErr error
	workers := max(2, runtime.GOMAXPROCS(0))
	bufs := make([][]byte, workers)
	hs := make([]hashWriter, workers)
	par.Each(len(inos), workers, func() bool { return ctx.Err() != nil }, func(w, k int) {
		if bufs[w] == nil {
			bufs[w], hs[w] = make([]byte, 1<<20), sha256.New()
		}
		es := byIno[inos[k]]
		d, err := fs.digestInode(ctx, inos[k], hs[w], bufs[w])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", es[0].Path(), err)
				cancel()
			}
			return
		}
		for _, e := range es {
			e.Digest = d
		}
	})
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
	Reset()
}

func (fs *FS) digestInode(ctx context.Context, ino uint32, h hashWriter, buf []byte) (tree.Digest, error) {
	in, err := fs.readInode(ino)
	if err != nil {
		return tree.Digest{}, err
	}
	r, err := fs.openInode(in)
	if err != nil {
		return tree.Digest{}, err
	}
	h.Reset()
	for off := int64(0); off < r.size; {
		if err := ctx.Err(); err != nil {
			return tree.Digest{}, err
		}
		n, err := r.ReadAt(buf, off)
		h.Write(buf[:n])
		off += int64(n)
		if err != nil && !(err == io.EOF && off == r.size) {
			return tree.Digest{}, err
		}
	}
	var d tree.Digest
	h.Sum(d[:0])
	return d, nil
}

// lookup resolves a slash-separated path from the root without following
// symlinks. "", "." and "/" name the root.
func (fs *FS) lookup(p string) (*inode, string, error) {
	p = strings.Trim(p, "/")
	in, err := fs.readInode(format.RootIno)
	if err != nil {
		return nil, "", err
	}
	if p == "" || p == "." {
		return in, ".", nil
	}
	clean := ""
	for _, name := range strings.Split(p, "/") {
		if name == "" || name == "." {
			continue
		}
		if !in.isDir() {
			return nil, "", fmt.Errorf("%s: not a directory", clean)
		}
		var found uint32
		stop := errors.New("found")
		err := fs.readDir(in, &dirBudget{left: fs.size}, nil, func(ino uint32, n []byte, _ uint8) error {
			if string(n) == name {
				found = ino
				return stop
			}
			return nil
		})
		if err != nil && err != stop {
			return nil, "", err
		}
		if name == ".." {
			if i := strings.LastIndexByte(clean, '/'); i >= 0 {
				clean = clean[:i]
			} else {
				clean = ""
			}
		} else if clean == "" {
			clean = name
		} else {
			clean += "/" + name
		}
		if found == 0 {
			return nil, "", fmt.Errorf("/%s: %w", clean, ErrNotFound)
		}
		if in, err = fs.readInode(found); err != nil {
			return nil, "", fmt.Errorf("/%s: %w", clean, err)
		}
	}
	if clean == "" {
		clean = "."
	}
	return in, clean, nil
}

// Stat returns the entry at path p. The root is returned with Path ".".
// A file with several names is a File here; only Tree settles hard links.
// Digests are not computed.
func (fs *FS) Stat(p string) (*tree.Entry, error) {
	in, clean, err := fs.lookup(p)
	if err != nil {
		return nil, err
	}
	e, err := fs.entry(in, clean, nil, new(tree.Paths))
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", clean, err)
	}
	if e == nil {
		return nil, fmt.Errorf("/%s: %w: special file (device, fifo or socket)", clean, ErrUnsupported)
	}
	return e, nil
}

// Open opens the regular file at path p for reading; holes read as zeros.
func (fs *FS) Open(p string) (io.ReadCloser, error) {
	in, clean, err := fs.lookup(p)
	if err != nil {
		return nil, err
	}
	if !in.isReg() {
		return nil, fmt.Errorf("/%s: not a regular file (mode %#o)", clean, in.mode)
	}
	r, err := fs.openInode(in)
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", clean, err)
	}
	return r, nil
}

// ReadFile reads the whole regular file at path p, refusing one that
// claims more bytes than the file system holds.
func (fs *FS) ReadFile(p string) ([]byte, error) {
	st, err := fs.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size > fs.size {
		return nil, fmt.Errorf("/%s: %d bytes, larger than the file system", p, st.Size)
	}
	rc, err := fs.Open(p)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, st.Size)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("/%s: %w", p, err)
	}
	return data, nil
}

// ReadDir returns the entries of the directory at path p, sorted by name,
// without "." and "..", special files or digests.
func (fs *FS) ReadDir(p string) ([]*tree.Entry, error) {
	in, clean, err := fs.lookup(p)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, fmt.Errorf("/%s: not a directory", clean)
	}
	prefix := clean + "/"
	if clean == "." {
		prefix = ""
	}
	var out []*tree.Entry
	var ps tree.Paths
	err = fs.readDir(in, &dirBudget{left: fs.size}, nil, func(ino uint32, nameb []byte, _ uint8) error {
		if string(nameb) == "." || string(nameb) == ".." {
			return nil
		}
		if err := checkName(nameb); err != nil {
			return inodeCorrupt(in.ino, "%v", err)
		}
		child, err := fs.readInode(ino)
		if err != nil {
			return err
		}
		e, err := fs.entry(child, prefix+string(nameb), nil, &ps)
		if err != nil {
			return fmt.Errorf("%s%s: %w", prefix, nameb, err)
		}
		if e != nil {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", clean, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path() < out[j].Path() })
	return out, nil
}

// Contiguous says where the content of the regular file at p lies when it
// is one run of written blocks with no holes: its byte offset in the file
// system and its size. ok is false for anything else (fragments, holes,
// unwritten extents, inline data), and callers then read it with Open.
// It lets a caller map a large file instead of copying it.
func (fs *FS) Contiguous(p string) (off, n int64, ok bool, err error) {
	in, clean, err := fs.lookup(p)
	if err != nil {
		return 0, 0, false, err
	}
	if !in.isReg() || in.inline() || int64(in.size) <= 0 {
		return 0, 0, false, nil
	}
	ext, err := fs.fileExtents(in, nil)
	if err != nil {
		return 0, 0, false, fmt.Errorf("/%s: %w", clean, err)
	}
	bs := uint64(fs.bs)
	if len(ext) != 1 || ext[0].logical != 0 || ext[0].uninit || ext[0].n*bs < in.size {
		return 0, 0, false, nil
	}
	start := ext[0].phys * bs
	if start+in.size > uint64(fs.size) {
		return 0, 0, false, nil
	}
	return int64(start), int64(in.size), true, nil
}
