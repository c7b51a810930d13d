// Package overlays reads overlay sources (directories, tar archives, inline
// YAML entries and deploys) into layers of tree entries and merges a role's
// layers into one tree with conflict policies, whiteouts, metadata rules and
// provenance. It never holds file contents in memory (tar members are
// spooled to an unlinked temporary file) and it writes no images.
package overlays

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/internal/quote"
	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/tree"
)

// Whiteout names, as the OCI image spec defines them.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// layer is what one overlay contributes: entries to add, and removals to
// apply to the layers below it first.
//
// Entries are kept in a list, not a map by path: a million-member
// archive spent more time growing a map than parsing its headers, and
// what needs a path's entry (a hard link to an earlier member, inline
// files declared twice) is rare; get builds the map then.
type layer struct {
	list      []*tree.Entry          // as added; of one path, the last added counts
	byPath    map[string]*tree.Entry // the last entry of each path, once get needs it; nil before
	whiteouts []string               // paths to remove
	opaque    []string               // directories whose lower contents to remove
	order     []*tree.Entry          // entries in tree order, once sorted; nil after add
	sum       string                 // digest, once computed; "" after add
}

func newLayer() *layer { return &layer{} }

// add records e, or a whiteout if e's name says so. An entry of a path
// added before replaces it.
func (l *layer) add(e *tree.Entry) {
	name := e.Name()
	switch {
	case name == opaqueMarker:
		l.opaque = append(l.opaque, e.Parent())
	case strings.HasPrefix(name, whiteoutPrefix):
		d := e.Parent()
		target := strings.TrimPrefix(name, whiteoutPrefix)
		if d != "" {
			target = d + "/" + target
		}
		l.whiteouts = append(l.whiteouts, target)
	default:
		if l.order != nil {
			// list is order: appending must not write into what a
			// caller of sorted may still hold.
			l.list = slices.Clip(l.list)
		}
		l.list = append(l.list, e)
		if l.byPath != nil {
			l.byPath[e.Path()] = e
		}
		l.order, l.sum = nil, ""
	}
}

// get returns the entry at path p, or nil.
func (l *layer) get(p string) *tree.Entry {
	if l.byPath == nil {
		l.byPath = make(map[string]*tree.Entry, len(l.list))
		for _, e := range l.list {
			l.byPath[e.Path()] = e
		}
	}
	return l.byPath[p]
}

// len returns how many paths the layer has entries for.
func (l *layer) len() int { return len(l.sorted()) }

// sorted returns the entries in tree order, the last added of each path.
// The slice is shared: both the layer's digest and the merge walk it, so
// it is sorted once.
func (l *layer) sorted() []*tree.Entry {
	if l.order != nil || len(l.list) == 0 {
		return l.order
	}
	l.list = sortEntries(l.list)
	l.order = l.list
	return l.order
}

// sortEntries sorts list, in the order its entries were added, into tree
// order in place and keeps only the last entry of each path. A directory
// walk lists in tree order already, which one pass finds.
func sortEntries(list []*tree.Entry) []*tree.Entry {
	if tree.Ascending(list) {
		return list
	}
	// Sorting keys that hold eight bytes of each path at a time compares
	// integers, without reaching into the entries: on a million archive
	// members, a fraction of the time of sorting the entries themselves.
	keys := make([]sortKey, len(list))
	for i, e := range list {
		keys[i] = sortKey{0, i, e}
	}
	workers := 1
	if len(keys) >= 1<<12 { // a small layer sorts faster than goroutines start
		workers = runtime.GOMAXPROCS(0)
	}
	sortKeys(keys, 0, workers)
	out := list[:0]
	for i, k := range keys {
		if i+1 < len(keys) && keys[i+1].chunk == k.chunk && tree.SamePath(keys[i+1].e, k.e) {
			continue // added again later, which counts
		}
		out = append(out, k.e)
	}
	clear(list[len(out):])
	return out
}

type sortKey struct {
	chunk uint64 // pathChunk of e.Path at the depth keys were last sorted at
	i     int    // where e was added
	e     *tree.Entry
}

// sortKeys sorts keys whose paths agree in their first depth bytes into
// tree order, entries of one path in the order they were added: by the
// eight bytes from depth on, then each run that agrees in those by the
// next eight. Runs are sorted apart from each other: with workers above
// one, the first level with several runs sorts them on that many
// goroutines.
func sortKeys(keys []sortKey, depth, workers int) {
	longer := false // some path goes on past these eight bytes
	for i := range keys {
		d, n := keys[i].e.PathParts()
		keys[i].chunk = pathChunk(d, n, depth)
		longer = longer || len(d)+len(n) > depth+8
	}
	if !longer {
		slices.SortFunc(keys, func(a, b sortKey) int {
			if a.chunk != b.chunk {
				return cmp.Compare(a.chunk, b.chunk)
			}
			if c := tree.ComparePaths(a.e, b.e); c != 0 {
				return c
			}
			return cmp.Compare(a.i, b.i)
		})
		return
	}
	slices.SortFunc(keys, func(a, b sortKey) int { return cmp.Compare(a.chunk, b.chunk) })
	var runs [][2]int // [start, end) of each run of more than one key
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].chunk == keys[i].chunk {
			j++
		}
		if j-i > 1 {
			if workers > 1 {
				runs = append(runs, [2]int{i, j})
			} else {
				sortKeys(keys[i:j], depth+8, 1)
			}
		}
		i = j
	}
	if len(runs) == 1 {
		sortKeys(keys[runs[0][0]:runs[0][1]], depth+8, workers) // no spreading here: try the next level
		return
	}
	par.Each(len(runs), workers, nil, func(_, k int) {
		sortKeys(keys[runs[k][0]:runs[k][1]], depth+8, 1)
	})
}

// pathChunk packs the eight bytes from depth on of the path d+n (an
// entry's PathParts), big-endian and padded with zeros, with '/' as 0:
// where two paths that agree before depth differ in these, their chunks
// order as tree.Compare orders them ('/' sorts first there, and names
// hold no NUL bytes).
func pathChunk(d, n string, depth int) uint64 {
	var k uint64
	for i := depth; i < depth+8; i++ {
		k <<= 8
		c := byte('/')
		switch {
		case i < len(d):
			c = d[i]
		case i-len(d) < len(n):
			c = n[i-len(d)]
		}
		if c != '/' {
			k |= uint64(c)
		}
	}
	return k
}

// digest is a content address of the layer: its listing and removals,
// sorted, hashed. Equal sources give equal digests on any machine. Each
// line is as fmt would print it with
//
//	"%s %o %d:%d %d %s %q %q\n", Type, Mode, UID, GID, Size, Digest, Path, Target
//	"  %q=%x\n", xattr Name, Value
//	"whiteout %q\n", "opaque %q\n"
//
// (digestFmt in the tests does), built with strconv: on a layer of many
// files fmt took a tenth of the merge.
func (l *layer) digest() string {
	if l.sum != "" {
		return l.sum
	}
	h := sha256.New()
	// The entries' lines are most of the cost, and are encoded on every
	// core.
	list := l.sorted()
	par.Encode(len(list), 1024, runtime.GOMAXPROCS(0), func(b []byte, k int) []byte {
		return appendLayerLine(b, list[k])
	}, func(b []byte) { h.Write(b) })
	b := make([]byte, 0, 64<<10)
	flush := func() {
		if len(b) > 60<<10 {
			h.Write(b)
			b = b[:0]
		}
	}
	for _, w := range sortedCopy(l.whiteouts) {
		b = append(b, "whiteout "...)
		b = quote.Append(b, w)
		b = append(b, '\n')
		flush()
	}
	for _, o := range sortedCopy(l.opaque) {
		b = append(b, "opaque "...)
		b = quote.Append(b, o)
		b = append(b, '\n')
		flush()
	}
	h.Write(b)
	l.sum = hex.EncodeToString(h.Sum(nil))
	return l.sum
}

// appendLayerLine appends e's line of a layer's digest, and its xattrs'.
func appendLayerLine(b []byte, e *tree.Entry) []byte {
	b = append(b, e.Type.String()...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.Mode), 8)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.UID), 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(e.GID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, ' ')
	b = e.Digest.AppendHex(b)
	b = append(b, ' ')
	d, n := e.PathParts()
	b = quote.AppendJoin(b, d, n)
	b = append(b, ' ')
	b = quote.Append(b, e.Target)
	b = append(b, '\n')
	for _, x := range e.Xattrs() {
		b = append(b, "  "...)
		b = quote.Append(b, x.Name)
		b = append(b, '=')
		b = hex.AppendEncode(b, x.Value)
		b = append(b, '\n')
	}
	return b
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// fileContent is a regular file of a directory source, dir+name below
// its root (slash-separated), listed as size bytes with identity id. It
// holds the path as its entry's tree.Entry.PathParts, whose bytes the
// entry holds anyway, rather than a path of its own.
type fileContent struct {
	root      *dirRoot
	dir, name string
	size      int64
	id        fileID
}

// rel is the file's path below its root.
func (f fileContent) rel() string { return filepath.FromSlash(f.dir + f.name) }

func (f fileContent) Open() (io.ReadCloser, error) { return f.open() }

func (f fileContent) open() (*rawFile, error) { return openListed(f.root, f.rel(), f.size, f.id) }

// String names the source file, for errors about its content.
func (f fileContent) String() string { return f.root.path + string(os.PathSeparator) + f.rel() }

// PolicyHits returns what the content policy's detector found in f as
// it was hashed: every file of a directory source is scanned then.
func (f fileContent) PolicyHits() ([]policy.Hit, bool) {
	f.root.mu.Lock()
	defer f.root.mu.Unlock()
	return f.root.hits[f.rel()], true
}

// bytesContent is inline content from YAML.
type bytesContent []byte

func (b bytesContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(b))), nil
}

// spool holds the members of tar archives in one unlinked temporary file,
// so that nothing is left behind however the process ends.
//
// Its cost per member is constant: one buffer for copying, one set of
// sums reset for each member, and writes gathered in pend so that a
// million one-byte members are not a million pwrite calls. Members
// smaller than a block are packed end to end (they have no zero blocks
// to leave as holes); larger ones start at a block boundary.
type spool struct {
	mu      sync.Mutex
	f       *os.File
	dir     string // where the file lies, for errors
	size    int64  // where the last member ends
	end     int64  // the file's size, once pend is written
	buf     []byte
	sum     *sums
	pend    []byte // bytes not yet written, which belong at pendOff
	pendOff int64
	scan    policy.Scanner
	hits    map[spoolRange][]policy.Hit // of members scanned as they were written, those with hits
}

// spoolRange is where a member lies in the spool.
type spoolRange struct{ off, n int64 }

// spoolBuf is the spool's copy buffer. It holds all that the content
// policy's detector looks at of a member, which it scans there in the
// first read (spoolContent.PolicyHits), so that validate and build read
// no member back from the spool to scan it.
const spoolBuf = policy.ScanLimit

// spoolPend is how many bytes the spool gathers before it writes them.
const spoolPend = 1 << 20

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "olimage-spool-*")
	if dir == "" {
		dir = os.TempDir()
	}
	if err != nil {
		return nil, fmt.Errorf("spool in %s: %w", dir, err)
	}
	// Unlinked at once: the open descriptor keeps the data until Close.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool in %s: %w", dir, err)
	}
	return &spool{f: f, dir: dir}, nil
}

// write copies r, of size bytes, to the spool and returns where it landed
// and its sums. Blocks of zeros are left as holes, so an archive's sparse
// or zero-filled members take no room in $TMPDIR. Bytes past s.size were
// never written, so they read as zeros wherever a member starts.
func (s *spool) write(r io.Reader, size int64) (off int64, sm contentSums, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off = s.size
	if size >= spoolBlock {
		off = (s.size + spoolBlock - 1) &^ (spoolBlock - 1)
	}
	if s.sum == nil {
		s.sum = newSums(size)
	} else {
		s.sum.reset(size)
	}
	sum := s.sum
	if s.buf == nil {
		s.buf = make([]byte, spoolBuf)
	}
	buf := s.buf
	var n int64
	var hits []policy.Hit
	for {
		k, rerr := io.ReadFull(r, buf)
		if n == 0 {
			// All the detector looks at is in buf: scan it now.
			var err error
			if hits, err = s.scan.ScanBytes(buf[:k]); err != nil {
				return off, contentSums{}, err
			}
		}
		if k > 0 {
			sum.Write(buf[:k])
			for i := 0; i < k; i += spoolBlock {
				b := buf[i:min(i+spoolBlock, k)]
				if bytes.Equal(b, zeros[:len(b)]) {
					continue
				}
				if err := s.writeAt(b, off+n+int64(i)); err != nil {
					return off, contentSums{}, err
				}
			}
			n += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	s.size = off + n
	if len(hits) > 0 {
		if s.hits == nil {
			s.hits = map[spoolRange][]policy.Hit{}
		}
		s.hits[spoolRange{off, n}] = hits
	}
	return off, sum.sums(), err
}

// writeAt gathers b, which belongs at offset at, past every earlier
// write, and writes what it gathered once pend is full or b does not
// follow it closely. A gap of less than a block is filled with zeros;
// a larger one is a hole.
func (s *spool) writeAt(b []byte, at int64) error {
	pendEnd := s.pendOff + int64(len(s.pend))
	if len(s.pend) > 0 && (at-pendEnd >= spoolBlock || int64(len(s.pend))+(at-pendEnd)+int64(len(b)) > spoolPend) {
		if err := s.flushLocked(); err != nil {
			return err
		}
		pendEnd = s.pendOff
	}
	if len(s.pend) == 0 {
		if s.pend == nil {
			s.pend = make([]byte, 0, spoolPend)
		}
		s.pendOff, pendEnd = at, at
	}
	for ; pendEnd < at; pendEnd++ {
		s.pend = append(s.pend, 0)
	}
	s.pend = append(s.pend, b...)
	return nil
}

// flushLocked writes what pend holds and makes the file as long as the
// members in it, whose last bytes may be a hole. s.mu is held.
func (s *spool) flushLocked() error {
	if len(s.pend) > 0 {
		if _, err := s.f.WriteAt(s.pend, s.pendOff); err != nil {
			return fmt.Errorf("spool in %s: %w", s.dir, err)
		}
		s.end = max(s.end, s.pendOff+int64(len(s.pend)))
		s.pend = s.pend[:0]
	}
	return nil
}

// flush writes everything spooled so far, so that it can be read back.
func (s *spool) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	if s.size > s.end {
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("spool in %s: %w", s.dir, err)
		}
		s.end = s.size
	}
	return nil
}

// release drops the copy and gather buffers (2 MiB) once an archive is
// spooled and flushed: the spool lives as long as the tree whose content
// it holds, and the next archive allocates them again.
func (s *spool) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf, s.pend = nil, nil
}

// spoolBlock is the unit of holes in the spool: the page size, which is
// the block size of the file systems $TMPDIR is on.
const spoolBlock = 4096

func (s *spool) Close() error { return s.f.Close() }

type spoolContent struct {
	s      *spool
	off, n int64
}

// PolicyHits returns what the content policy's detector found in c when
// it was written: every member is scanned then.
func (c spoolContent) PolicyHits() ([]policy.Hit, bool) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.hits[spoolRange{c.off, c.n}], true
}

func (c spoolContent) Open() (io.ReadCloser, error) {
	if err := c.s.flush(); err != nil {
		return nil, err
	}
	return io.NopCloser(io.NewSectionReader(c.s.f, c.off, c.n)), nil
}

// hasher fills in the sums of source files on worker goroutines while the
// directory walk that finds them goes on; hashing dominates reading a
// directory source. It runs several workers per CPU: with one per CPU, a
// source of a few large files ends with one CPU hashing the last file
// alone, while more workers share the CPUs so the files finish together.
type hasher struct {
	q    *par.Queue[*tree.Entry]
	mu   sync.Mutex
	errs []error
}

func newHasher(ctx context.Context, workers int) *hasher {
	h := &hasher{}
	// Up to as large as what the content policy scans of a file, so that
	// the read that hashes a file also serves the policy
	// (fileContent.PolicyHits).
	bufs := make([][]byte, workers)
	scs := make([]policy.Scanner, workers)
	// Once ctx is done the walk stops too, and says why.
	stop := func() bool { return ctx.Err() != nil }
	h.q = par.NewQueue(workers, 256, stop, func(w int, e *tree.Entry) {
		fc := e.Content.(fileContent)
		// Only as large as this file needs (one byte over its size shows
		// it grew): a worker that meets only small files keeps a small
		// buffer, where 4 workers a CPU of policy.ScanLimit each would
		// hold a quarter of a gigabyte on a 64-CPU machine.
		if need := int(min(fc.size+1, policy.ScanLimit)); len(bufs[w]) < need {
			bufs[w] = make([]byte, min(max(4096, 1<<bits.Len(uint(need-1))), policy.ScanLimit))
		}
		sm, hits, err := hashFile(ctx, fc, bufs[w], &scs[w])
		if err == nil && sm.size != e.Size {
			err = fmt.Errorf("%s: changed while being read (size %d, then %d)", fc, e.Size, sm.size)
		}
		if err != nil {
			h.mu.Lock()
			h.errs = append(h.errs, err)
			h.mu.Unlock()
			return
		}
		sm.set(e)
		if len(hits) > 0 {
			fc.root.addHits(fc.rel(), hits)
		}
	})
	return h
}

// add queues e, whose Content is a fileContent and Size its size.
func (h *hasher) add(e *tree.Entry) { h.q.Add(e) }

// wait waits for every queued entry and returns the errors, sorted so the
// message is the same whichever worker met which.
func (h *hasher) wait() error {
	h.q.Wait()
	sort.Slice(h.errs, func(i, j int) bool { return h.errs[i].Error() < h.errs[j].Error() })
	return errors.Join(h.errs...)
}
