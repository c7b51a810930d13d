package overlays

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// Shared reads each directory and tar source once for every role merged
// with it, as build --all does: a base that nine roles list is walked,
// hashed and scanned by the content policy once, not nine times. A source is the same one when its
// kind, path, overlay name, device, inode, size and modification time
// are. Each role gets its own copy of the entries, which its merge
// changes (rules, provenance). Close it after the last role is built:
// it holds the spool and the open source directories.
type Shared struct {
	mu    sync.Mutex // one read at a time: the reader's state is not shared-safe
	r     *reader
	items map[sharedKey]*sharedItem
	reads int // sources read, for tests
	// scans holds the content policy's scans of file content, which
	// roles sharing a source would otherwise each repeat; used only when
	// some source is listed by more than one role (multi), as it holds
	// an entry for every file.
	scans policy.Scans
	// uses counts the roles of the fleet that list each source: the last
	// one takes the layer itself rather than a copy, and the Shared lets
	// go of it, so a source that one role lists is held once, not twice.
	uses  map[useKey]int
	multi bool
}

type useKey struct {
	kind            roles.OverlayKind
	source, overlay string
}

type sharedKey struct {
	kind            roles.OverlayKind
	source, overlay string
	dev, ino        uint64
	size, mtime     int64
}

type sharedItem struct {
	l   *layer
	err error
}

// NewShared returns a Shared for roles of fleet f. Reads stop once ctx is
// done; tmpdir is where compressed archives are spooled ("" for $TMPDIR).
func NewShared(ctx context.Context, f *roles.Fleet, tmpdir string) *Shared {
	s := &Shared{r: &reader{ctx: ctx, fleet: f, tmpdir: tmpdir}, items: map[sharedKey]*sharedItem{}, uses: map[useKey]int{}}
	for _, name := range f.RoleNames(false) {
		for _, o := range f.Roles[name].Overlays {
			if o.Kind == roles.DirOverlay || o.Kind == roles.TarOverlay {
				u := useKey{o.Kind, o.Source, o.Name}
				s.uses[u]++
				s.multi = s.multi || s.uses[u] > 1
			}
		}
	}
	return s
}

// Close releases what the shared sources hold.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.close()
}

// layer returns a copy of the layer of o, a dir or tar overlay, reading
// the source the first time. The last of the roles that list the source
// gets the layer itself, which the Shared then forgets (a role beyond
// those reads the source again). The copy is made under the lock: the
// last role may change the entries as soon as it has them.
func (s *Shared) layer(o *roles.Overlay) (*layer, error) {
	l, k, err := s.read(o)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := useKey{o.Kind, o.Source, o.Name}
	if s.uses[u]--; s.uses[u] > 0 {
		return l.clone(), nil
	}
	if s.items[k] != nil && s.items[k].l == l {
		delete(s.items, k)
	}
	return l, nil
}

// Entries returns how many entries the source of o holds: of a dir or tar
// overlay, read now if no role has read it yet; of inline files, the
// files; of a deploy, 0 (its source is not shared). It is what a role's
// merge will hold in memory, known before the role is built.
func (s *Shared) Entries(o *roles.Overlay) (int, error) {
	switch o.Kind {
	case "dir", "tar":
		l, _, err := s.read(o)
		if err != nil {
			return 0, err
		}
		return l.len(), nil
	case "files":
		return len(o.Files), nil
	}
	return 0, nil
}

// read returns the layer of o, a dir or tar overlay, reading the source
// the first time; callers do not change it.
func (s *Shared) read(o *roles.Overlay) (*layer, sharedKey, error) {
	fi, err := os.Stat(o.Source)
	if err != nil {
		return nil, sharedKey{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, sharedKey{}, fmt.Errorf("%s: no device and inode number", o.Source)
	}
	k := sharedKey{o.Kind, o.Source, o.Name, uint64(st.Dev), uint64(st.Ino), fi.Size(), fi.ModTime().UnixNano()}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.items[k]
	if it == nil {
		it = &sharedItem{}
		s.reads++
		if o.Kind == roles.DirOverlay {
			it.l, it.err = s.r.readDir(o.Source, o.Name)
		} else {
			it.l, it.err = s.r.readTar(o.Source, o.Name)
		}
		if it.err == nil {
			// Sorted and digested now, under the lock: each role's
			// copy takes both as they are (clone).
			it.l.sorted()
			it.l.digest()
		}
		if it.err == nil || s.r.ctx.Err() == nil {
			s.items[k] = it // an interrupted read is not remembered
		}
	}
	if it.err != nil {
		return nil, k, it.err
	}
	return it.l, k, nil
}

// clone copies l and its entries, so that a merge can change them.
// Content, xattrs and block lists are shared: merges never change them.
// The copy keeps l's order and digest, which take a role's merge a tenth
// of its time to compute again.
func (l *layer) clone() *layer {
	src := l.sorted()
	c := &layer{list: make([]*tree.Entry, len(src)), whiteouts: l.whiteouts, opaque: l.opaque, sum: l.sum}
	for i, e := range src {
		ce := *e
		c.list[i] = &ce
	}
	c.order = c.list
	return c
}
