// Package tree is the model of a volume's contents that every other
// package shares: a sorted set of entries (path, type, metadata, content
// reference, provenance). It holds references to content, never content
// itself, and it does not know how entries were read or how they are written.
package tree

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// Type is the kind of a tree entry.
type Type uint8

// The entry types a volume can hold. Device nodes, fifos and sockets are
// deliberately absent: a data volume has no use for them.
const (
	File     Type = iota + 1 // regular file
	Dir                      // directory
	Symlink                  // symbolic link; Target holds the link text
	Hardlink                 // another name for the regular file at Target
)

var typeNames = map[Type]string{File: "file", Dir: "dir", Symlink: "symlink", Hardlink: "hardlink"}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType is the inverse of Type.String.
func ParseType(s string) (Type, error) {
	for t, name := range typeNames {
		if name == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown entry type %q", s)
}

// Permission and special bits an entry's Mode may carry.
const (
	ModePerm   = 0o777
	ModeSticky = 0o1000
	ModeSetgid = 0o2000
	ModeSetuid = 0o4000
	ModeMask   = 0o7777
)

// Content opens the bytes of a regular file. Implementations re-open their
// source on every call, so a tree of any size holds no file data in memory.
type Content interface {
	Open() (io.ReadCloser, error)
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is one path of the volume.
type Entry struct {
	Path    string // slash-separated, relative to the volume root, never "" or "."
	Type    Type
	Mode    uint32 // permission and special bits only (ModeMask)
	UID     uint32
	GID     uint32
	Owner   string // name UID came from, if known
	Group   string // name GID came from, if known
	ModTime int64  // seconds since the Unix epoch
	Size    int64  // bytes of content (regular files and hard links)
	Digest  string // hex sha256 of the content (regular files and hard links)
	Target  string // symlink text, or for Hardlink the path of the primary file
	Xattrs  []Xattr
	Content Content // nil for anything but File and Hardlink

	// Check, when HasCheck, is the CRC-32C (Castagnoli) of the content,
	// computed with Digest by whoever read the source. A writer that reads
	// the content again confirms it has not changed with this, at a small
	// fraction of the cost of a second SHA-256.
	Check    uint32
	HasCheck bool
	// HasData and Implicit are explained below; they sit here beside
	// HasCheck so that the three bools take no padding of their own, in
	// entries of which a tree may hold a million.
	HasData  bool
	Implicit bool

	// Data, when HasData, lists the blocks of the content (in units of
	// SparseBlock bytes) that are not all zeros, found by whoever read
	// the source in the same pass as Digest. Only content of at least
	// SparseMin bytes carries it. A writer that stores zero blocks as
	// holes uses it instead of reading the content once more, and still
	// confirms the holes are zero while it writes.
	Data []BlockRun

	// Provenance. Implicit (above) marks a parent directory no overlay
	// named explicitly.
	Overlay   string   // overlay that supplied the entry
	Shadowed  []string // overlays whose entry for this path it replaced, lowest first
	OwnerRule string   // where the owner and group came from ("" for the source)
	ModeRule  string   // where the mode came from ("" for the source)

	// LinkKey groups entries that were hard links of one another in their
	// source. Tree.Normalize turns every group into one File and Hardlinks.
	LinkKey string
}

// SparseBlock is the unit of Entry.Data: the ext4 block size.
const SparseBlock = 4096

// SparseMin is the smallest content whose zero blocks are worth finding:
// smaller files are stored dense.
const SparseMin = 64 << 10

// BlockRun is Count blocks of SparseBlock bytes from block Start.
type BlockRun struct {
	Start, Count uint32
}

// CheckPath reports whether p is a path as an Entry holds it: relative to
// the volume root, slash-separated, in canonical form, and unable to leave
// the root. Trees read from a manifest or an image are checked with it
// before anything trusts their paths.
func CheckPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%q: not a path inside the volume", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q: not a path inside the volume", p)
		}
	}
	return nil
}

// IsDir reports whether e is a directory.
func (e *Entry) IsDir() bool { return e.Type == Dir }

// Name is the last element of e's path.
func (e *Entry) Name() string {
	if i := strings.LastIndexByte(e.Path, '/'); i >= 0 {
		return e.Path[i+1:]
	}
	return e.Path
}

// Parent is the parent path of p, "" for a top-level path.
func Parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Less orders paths so that every directory is followed directly by its
// whole subtree: "a" < "a/b" < "a-b". Plain byte order would put "a-b"
// between "a" and "a/b" because '-' sorts before '/'.
func Less(a, b string) bool { return Compare(a, b) < 0 }

// Compare is Less as a three-way comparison, for slices.SortFunc. It
// looks at each byte once: sorting a million paths calls it some twenty
// million times.
func Compare(a, b string) int {
	n := min(len(a), len(b))
	// Paths of one tree share long prefixes: skip the common part eight
	// bytes at a time, then compare from the first byte that differs.
	// Measured on two paths sharing 57 bytes: 25 ns a compare, against
	// 87 ns comparing eight-byte substrings without unsafe (lessPlain)
	// and 126 ns byte by byte: BenchmarkLess, BenchmarkLessPlain,
	// BenchmarkLessSlow (means of four alternating runs on 2 shared cores).
	i := 0
	if n >= 8 {
		ba := unsafe.Slice(unsafe.StringData(a), len(a))
		bb := unsafe.Slice(unsafe.StringData(b), len(b))
		for ; i+8 <= n; i += 8 {
			if x := binary.LittleEndian.Uint64(ba[i:]) ^ binary.LittleEndian.Uint64(bb[i:]); x != 0 {
				i += bits.TrailingZeros64(x) / 8
				break
			}
		}
	}
	for ; i < n; i++ {
		ca, cb := a[i], b[i]
		switch {
		case ca == cb:
			continue
		case ca == '/':
			return -1
		case cb == '/':
			return 1
		case ca < cb:
			return -1
		}
		return 1
	}
	return cmp.Compare(len(a), len(b))
}

// Sort sorts entries by path in tree order.
func Sort(entries []*Entry) {
	slices.SortFunc(entries, func(a, b *Entry) int { return Compare(a.Path, b.Path) })
}

// Tree is a set of entries sorted with Less. The volume root itself is not
// an entry; its metadata belongs to whoever writes the tree.
type Tree struct {
	Entries []*Entry
}

// New sorts entries into a tree. It fails on a duplicate path.
func New(entries []*Entry) (*Tree, error) {
	// A merge hands its entries over in order: one pass that finds them
	// strictly ascending (so without duplicates) saves sorting a million
	// entries again.
	inOrder := true
	for i := 1; i < len(entries) && inOrder; i++ {
		inOrder = Compare(entries[i-1].Path, entries[i].Path) < 0
	}
	if inOrder {
		return &Tree{Entries: entries}, nil
	}
	Sort(entries)
	for i := 1; i < len(entries); i++ {
		if entries[i].Path == entries[i-1].Path {
			return nil, fmt.Errorf("%s: duplicate path in tree", entries[i].Path)
		}
	}
	return &Tree{Entries: entries}, nil
}

// Get returns the entry at path p, or nil. It searches the sorted entries
// rather than keeping an index: a map of a million paths would cost about
// a third of what the entries themselves do.
func (t *Tree) Get(p string) *Entry {
	i, ok := slices.BinarySearchFunc(t.Entries, p, func(e *Entry, p string) int { return Compare(e.Path, p) })
	if !ok {
		return nil
	}
	return t.Entries[i]
}

// Len is the number of entries.
func (t *Tree) Len() int { return len(t.Entries) }

// Normalize settles hard links: within each LinkKey group the first path in
// tree order becomes the File and the others Hardlinks to it, so the result
// does not depend on the order sources were read in. A group of one is a
// plain File.
func (t *Tree) Normalize() {
	primary := map[string]*Entry{}
	for _, e := range t.Entries {
		if e.LinkKey == "" || (e.Type != File && e.Type != Hardlink) {
			continue
		}
		if p, ok := primary[e.LinkKey]; ok {
			e.Type = Hardlink
			e.Target = p.Path
			continue
		}
		primary[e.LinkKey] = e
		e.Type = File
		e.Target = ""
	}
}

// Links counts the names each File has (1 plus its Hardlinks).
func (t *Tree) Links() map[string]int {
	n := map[string]int{}
	for _, e := range t.Entries {
		switch e.Type {
		case File:
			n[e.Path]++
		case Hardlink:
			n[e.Target]++
		}
	}
	return n
}

// EqualXattrs reports whether two sorted xattr lists are the same.
func EqualXattrs(a, b []Xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}
