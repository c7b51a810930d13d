// Package overlays reads overlay sources (directories, tar archives, inline
// YAML entries and deploys) into layers of tree entries and merges a role's
// layers into one tree with conflict policies, whiteouts, metadata rules and
// provenance. It never holds file contents in memory (tar members are
// spooled to an unlinked temporary file) and it writes no images.
package overlays

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/internetarchive/olimage/tree"
)

// Whiteout names, as the OCI image spec defines them.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// layer is what one overlay contributes: entries to add, and removals to
// apply to the layers below it first.
type layer struct {
	entries   map[string]*tree.Entry
	whiteouts []string // paths to remove
	opaque    []string // directories whose lower contents to remove
}

func newLayer() *layer { return &layer{entries: map[string]*tree.Entry{}} }

// add records e, or a whiteout if e's name says so. src names the source for
// errors.
func (l *layer) add(e *tree.Entry) {
	name := e.Name()
	switch {
	case name == opaqueMarker:
		l.opaque = append(l.opaque, tree.Parent(e.Path))
	case strings.HasPrefix(name, whiteoutPrefix):
		d := tree.Parent(e.Path)
		target := strings.TrimPrefix(name, whiteoutPrefix)
		if d != "" {
			target = d + "/" + target
		}
		l.whiteouts = append(l.whiteouts, target)
	default:
		l.entries[e.Path] = e
	}
}

// sorted returns the entries in tree order.
func (l *layer) sorted() []*tree.Entry {
	out := make([]*tree.Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return tree.Less(out[i].Path, out[j].Path) })
	return out
}

// digest is a content address of the layer: its listing and removals,
// sorted, hashed. Equal sources give equal digests on any machine.
func (l *layer) digest() string {
	h := sha256.New()
	for _, e := range l.sorted() {
		fmt.Fprintf(h, "%s %o %d:%d %d %s %q %q\n", e.Type, e.Mode, e.UID, e.GID, e.Size, e.Digest, e.Path, e.Target)
		for _, x := range e.Xattrs {
			fmt.Fprintf(h, "  %q=%x\n", x.Name, x.Value)
		}
	}
	for _, w := range sortedCopy(l.whiteouts) {
		fmt.Fprintf(h, "whiteout %q\n", w)
	}
	for _, o := range sortedCopy(l.opaque) {
		fmt.Fprintf(h, "opaque %q\n", o)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// fileContent is a regular file of a directory source.
type fileContent string

func (f fileContent) Open() (io.ReadCloser, error) { return openRegular(string(f)) }

// String names the source file, for errors about its content.
func (f fileContent) String() string { return string(f) }

// bytesContent is inline content from YAML.
type bytesContent []byte

func (b bytesContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(b))), nil
}

// spool holds the members of tar archives in one unlinked temporary file,
// so that nothing is left behind however the process ends.
type spool struct {
	mu   sync.Mutex
	f    *os.File
	size int64
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "olimage-spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Unlinked at once: the open descriptor keeps the data until Close.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &spool{f: f}, nil
}

// write copies r to the spool and returns where it landed, its digest and
// its check.
func (s *spool) write(r io.Reader) (off, n int64, digest string, check uint32, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off = s.size
	w := io.NewOffsetWriter(s.f, off)
	sum := newSums()
	n, err = io.Copy(io.MultiWriter(w, sum), r)
	s.size += n
	return off, n, sum.digest(), sum.check(), err
}

func (s *spool) Close() error { return s.f.Close() }

type spoolContent struct {
	s      *spool
	off, n int64
}

func (c spoolContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(c.s.f, c.off, c.n)), nil
}

// hashFile digests the file at p.
func hashFile(p string, buf []byte) (int64, string, uint32, error) {
	f, err := openRegular(p)
	if err != nil {
		return 0, "", 0, err
	}
	defer f.Close()
	return hashReader(f, buf)
}

// hashReader digests r and computes its check; buf may be nil.
func hashReader(r io.Reader, buf []byte) (int64, string, uint32, error) {
	sum := newSums()
	// Hide any WriterTo (as *os.File has): it would ignore buf and allocate
	// a fresh 32 KiB buffer per file, which on many small files is most of
	// the garbage the merge makes.
	n, err := io.CopyBuffer(sum, struct{ io.Reader }{r}, buf)
	if err != nil {
		return 0, "", 0, err
	}
	return n, sum.digest(), sum.check(), nil
}

// sums computes a content's SHA-256 digest and its CRC-32C check in one pass.
type sums struct {
	h   hash.Hash
	crc uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newSums() *sums { return &sums{h: sha256.New()} }

func (s *sums) Write(p []byte) (int, error) {
	s.h.Write(p)
	s.crc = crc32.Update(s.crc, castagnoli, p)
	return len(p), nil
}

func (s *sums) digest() string { return hex.EncodeToString(s.h.Sum(nil)) }
func (s *sums) check() uint32  { return s.crc }

// hashAll fills Size and Digest of every entry that has a fileContent, with
// one worker per CPU; hashing dominates reading a directory source.
func hashAll(entries []*tree.Entry, workers int) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		jobs = make(chan *tree.Entry, 256)
	)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128<<10)
			for e := range jobs {
				p := string(e.Content.(fileContent))
				n, d, c, err := hashFile(p, buf)
				if err == nil && n != e.Size {
					err = fmt.Errorf("%s: changed while being read (size %d, then %d)", p, e.Size, n)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				e.Digest, e.Check, e.HasCheck = d, c, true
			}
		}()
	}
	for _, e := range entries {
		if _, ok := e.Content.(fileContent); ok {
			jobs <- e
		}
	}
	close(jobs)
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}
