// Package policy checks a merged tree against a fleet's content policy:
// forbidden paths, secrets in file content and file names, world-writable
// entries and oversized files. It reads content through the tree's
// Content and never changes the tree; setuid bits and capabilities are
// checked by package overlays, where the metadata rules apply.
package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/internetarchive/olimage/glob"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// Check names one kind of finding.
type Check string

// The checks.
const (
	Forbidden     Check = "forbidden"      // a path matches a forbid glob
	Secret        Check = "secret"         // content that looks like a secret
	SecretFile    Check = "secret file"    // a name secrets are kept under
	WorldWritable Check = "world-writable" // mode has the write bit for others
	TooLarge      Check = "too large"      // a file over max_file_size
)

// ErrPolicy marks a finding of the content policy.
var ErrPolicy = errors.New("refused by the content policy")

// Finding is one thing the policy refuses.
type Finding struct {
	Check   Check
	Path    string // volume path
	Overlay string // the overlay that supplied it
	Source  string // where it came from (a file, archive:member or role file:line), if known
	Line    int    // line in the content, 0 if not about a line
	Inline  bool   // Source is the role file and line of an inline entry
	What    string
}

func (f Finding) Error() string {
	at := f.Source
	if at == "" {
		at = f.Path
	}
	switch {
	case f.Line > 0 && f.Inline:
		at = fmt.Sprintf("%s (line %d of its content)", at, f.Line)
	case f.Line > 0:
		at = fmt.Sprintf("%s:%d", at, f.Line)
	}
	return fmt.Sprintf("%s: %s (overlay %q, /%s): %s; remove it, or exempt the path with policy: {allow: [{path: ..., reason: ...}]}",
		at, f.Check, f.Overlay, f.Path, f.What)
}

func (f Finding) Unwrap() error { return ErrPolicy }

// Scans remembers what the secret detector found in content, by its
// sha256, so that roles built together scan a file they share once. Safe
// for concurrent use; the zero value is ready.
type Scans struct {
	mu   sync.Mutex
	hits map[tree.Digest][]Hit
}

// scan returns the hits in e's content, from s if it has them, else
// read with sc, or from the content itself when it was scanned as it was
// read (Scanned).
func (s *Scans) scan(e *tree.Entry, sc *Scanner) ([]Hit, error) {
	if c, ok := e.Content.(Scanned); ok {
		if hits, ok := c.PolicyHits(); ok {
			return hits, nil
		}
	}
	if s == nil || e.Digest.IsZero() {
		return sc.scanContent(e.Content)
	}
	s.mu.Lock()
	hits, ok := s.hits[e.Digest]
	s.mu.Unlock()
	if ok {
		return hits, nil
	}
	hits, err := sc.scanContent(e.Content)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.hits == nil {
		s.hits = map[tree.Digest][]Hit{}
	}
	s.hits[e.Digest] = hits
	s.mu.Unlock()
	return hits, nil
}

// Apply checks entries against p and returns every finding, in tree
// order. source names where an entry came from, for the findings, and
// says whether that is an inline entry of a role file. scans, if not
// nil, holds the content scans of earlier calls and takes this one's.
func Apply(ctx context.Context, f *roles.Fleet, p roles.ContentPolicy, entries []*tree.Entry, source func(*tree.Entry) (string, bool), scans *Scans) ([]Finding, error) {
	var out []Finding
	var sc Scanner
	var pb tree.PathBuf
	for i, e := range entries {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		ep := pb.Of(e) // only until the next entry: findings take e.Path()
		if _, ok := p.Allowed(ep); ok {
			continue
		}
		find := func(c Check, line int, what string) {
			src, inline := source(e)
			out = append(out, Finding{Check: c, Path: e.Path(), Overlay: e.Overlay(), Source: src, Inline: inline, Line: line, What: what})
		}
		for _, g := range p.Forbid {
			if glob.Match(g.Pattern, ep) {
				find(Forbidden, 0, fmt.Sprintf("matches forbid glob %q (%s)", g.Pattern, f.Where(g.Pos)))
				break
			}
		}
		if e.Type == tree.Symlink || e.Type == tree.Hardlink {
			continue
		}
		if e.Mode&0o002 != 0 {
			find(WorldWritable, 0, fmt.Sprintf("mode %04o lets any user write it", e.Mode))
		}
		if e.Type != tree.File {
			continue
		}
		if why := SecretName(e.Name()); why != "" {
			find(SecretFile, 0, why)
		}
		if p.MaxFileSize > 0 && e.Size > p.MaxFileSize {
			find(TooLarge, 0, fmt.Sprintf("%d bytes, over max_file_size %d", e.Size, p.MaxFileSize))
		}
		if e.Content == nil {
			continue
		}
		hits, err := scans.scan(e, &sc)
		if err != nil {
			return nil, fmt.Errorf("%s: reading it for the content policy: %w", e.Path(), err)
		}
		for _, h := range hits {
			find(Secret, h.Line, h.What)
		}
	}
	return out, nil
}

func (s *Scanner) scanContent(c tree.Content) ([]Hit, error) {
	rc, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return s.Scan(rc)
}

// Scanned is content that its reader ran through Scan as it read it, so
// that Apply need not read it again: PolicyHits returns what Scan found,
// or false when the content was not scanned (it was too large to hold
// whole while it was read) and Apply reads it.
type Scanned interface {
	PolicyHits() ([]Hit, bool)
}

// ScanLimit is how much of a file the secret detector reads: secrets sit
// in configuration and keys, which are small; data files are large.
const ScanLimit = 1 << 20

// Join turns findings into one error, or nil.
func Join(fs []Finding) error {
	errs := make([]error, len(fs))
	for i, f := range fs {
		errs[i] = f
	}
	return errors.Join(errs...)
}
