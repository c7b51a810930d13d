// Package diff compares two trees, whatever they were read from (an image,
// a manifest, a role), and renders the changes for people and for
// machines. Compare chooses what to read of two operands (manifests,
// differing manifest chunks, listings compared byte by byte, or hashed
// content) and has them opened by the Opener its caller gives (package
// operand's, which knows images, manifests, registries and fleets); Trees
// and Chunks compare what the trees say. It parses no images or fleets
// itself, and it reads file content only when an entry has no digest or a
// content diff is asked for.
package diff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/internetarchive/olimage/glob"
	"github.com/internetarchive/olimage/internal/par"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// Kind is one way an entry changed.
type Kind string

// The kinds of change, with the letter each shows as in text output.
const (
	Added   Kind = "added"   // +
	Removed Kind = "removed" // -
	Type    Kind = "type"    // T
	Content Kind = "content" // M
	Target  Kind = "target"  // L
	Mode    Kind = "mode"    // m
	Owner   Kind = "owner"   // o
	Xattrs  Kind = "xattrs"  // x
	Time    Kind = "mtime"   // t, only with Options.Times
	Renamed Kind = "renamed" // R, a deploy bin of a service replaced by another
)

var letters = map[Kind]string{Added: "+", Removed: "-", Renamed: "R", Type: "T", Content: "M", Target: "L", Mode: "m", Owner: "o", Xattrs: "x", Time: "t"}

// order is the order kinds are listed in.
var order = []Kind{Added, Removed, Renamed, Type, Content, Target, Mode, Owner, Xattrs, Time}

// Legend explains the letters of text output; help text prints it.
const Legend = `  +  added                    -  removed
  T  type changed              M  content modified
  L  link target changed       m  mode changed
  o  owner or group changed    x  extended attributes changed
  t  mtime changed (with --times)
  R  deploy renamed: a service's one removed deploy bin replaced by one
     new bin; paths inside it are compared with the old bin's, so only
     what changed in the deploy is listed`

// Change is one path that differs.
type Change struct {
	Path  string // in B when present there, else in A
	From  string // the path in A, when it differs (inside a renamed deploy)
	Kinds []Kind
	A, B  *tree.Entry // nil when absent on that side
}

// Has reports whether c includes kind k.
func (c *Change) Has(k Kind) bool {
	for _, x := range c.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Options narrow a comparison.
type Options struct {
	// Paths keeps only changes at or below these paths, or matching these
	// globs (** matches any number of elements). Empty keeps everything.
	Paths []string
	// Times reports mtime changes too; by default they are ignored, as
	// every release has its own epoch.
	Times bool
	// Exact compares every path with the same path only: no deploy bins
	// are paired (verify wants the image's paths to be the manifest's).
	Exact bool
}

func (o Options) keep(p string) bool {
	if len(o.Paths) == 0 {
		return true
	}
	for _, f := range o.Paths {
		f = strings.Trim(f, "/")
		if f == "" || p == f || strings.HasPrefix(p, f+"/") || glob.Match(f, p) {
			return true
		}
	}
	return false
}

// Trees compares a and b. Files without a digest on either side have
// their contents compared byte by byte; a file with a digest on one side
// only has the other side's content read and hashed. ctx stops either.
func Trees(ctx context.Context, a, b *tree.Tree, opts Options) ([]Change, error) {
	var renamed map[string]*tree.Entry
	if !opts.Exact {
		var err error
		if b, renamed, err = pairDeploys(a, b); err != nil {
			return nil, err
		}
	}
	same, err := compareBytes(ctx, a, b, func(p string) bool {
		return opts.keep(p) || renamed[p] != nil && opts.keep(renamed[p].Path())
	})
	if err != nil {
		return nil, err
	}
	var out []Change
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ea, eb *tree.Entry
		order := 0 // how a's entry compares with b's, where both have one
		if i < len(a.Entries) && j < len(b.Entries) {
			order = tree.ComparePaths(a.Entries[i], b.Entries[j])
		}
		switch {
		case j == len(b.Entries) || i < len(a.Entries) && order < 0:
			ea = a.Entries[i]
			i++
		case i == len(a.Entries) || order > 0:
			eb = b.Entries[j]
			j++
		default:
			ea, eb = a.Entries[i], b.Entries[j]
			i++
			j++
		}
		p := pathOf(ea, eb)
		c := Change{Path: p, A: ea, B: eb}
		if orig, ok := renamed[p]; ok {
			// Report B's own path and entry, not the one mapped onto A's.
			c.Path, c.From = orig.Path(), p
			if eb != nil {
				c.B = orig
			}
		}
		if !opts.keep(c.Path) && (c.From == "" || !opts.keep(c.From)) {
			continue
		}
		kinds, err := compare(ctx, ea, eb, opts, same)
		if err != nil {
			return nil, err
		}
		if c.From != "" && ea != nil && eb != nil && tree.Parent(strings.TrimPrefix(p, deploysDir)) != "" && strings.Count(strings.TrimPrefix(p, deploysDir), "/") == 1 {
			kinds = append([]Kind{Renamed}, kinds...) // the bin directory itself
		}
		if len(kinds) > 0 {
			c.Kinds = kinds
			out = append(out, c)
		}
	}
	return out, nil
}

// Chunks compares the entries of two manifests olimage wrote that differ,
// as manifest.Differing finds them: only those are decoded, so two
// releases that share most of their tree compare in the time it takes to
// read them. It reports what Trees would report of the decoded manifests
// (given all entries instead, it still does, decoding them all).
func Chunks(ctx context.Context, a, b []manifest.Chunk, opts Options) ([]Change, error) {
	// What differs, as two small trees: added and removed deploy bins
	// are all in them, so deploy pairing sees the same bins as in full.
	ta, err := decodeAll(ctx, a)
	if err != nil {
		return nil, err
	}
	tb, err := decodeAll(ctx, b)
	if err != nil {
		return nil, err
	}
	return Trees(ctx, ta, tb, opts)
}

// decodeAll decodes chunks into a tree, on every core: decoding is most of
// what is left of a comparison by chunks.
func decodeAll(ctx context.Context, chunks []manifest.Chunk) (*tree.Tree, error) {
	entries := make([]*tree.Entry, len(chunks))
	errs := make([]error, len(chunks))
	par.Each(len(chunks), runtime.GOMAXPROCS(0), func() bool { return ctx.Err() != nil }, func(_, k int) {
		entries[k], errs[k] = chunks[k].Decode()
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tree.New(entries)
}

// deploysDir holds every service's deploy history: deploysDir/SERVICE/BIN.
const deploysDir = tree.DeploysDir + "/"

// pairDeploys finds services whose one deploy bin in a was replaced by one
// new bin in b, and returns b with those bins' entries moved onto a's bin
// paths, so their contents compare path by path, and a map from each moved
// path to b's original entry.
func pairDeploys(a, b *tree.Tree) (*tree.Tree, map[string]*tree.Entry, error) {
	bins := func(t *tree.Tree) map[string]map[string]bool {
		m := map[string]map[string]bool{}
		for _, e := range t.Entries {
			if e.Type != tree.Dir {
				continue
			}
			rest, ok := strings.CutPrefix(e.Path(), deploysDir)
			if !ok || strings.Count(rest, "/") != 1 {
				continue
			}
			svc, bin, _ := strings.Cut(rest, "/")
			if m[svc] == nil {
				m[svc] = map[string]bool{}
			}
			m[svc][bin] = true
		}
		return m
	}
	ba, bb := bins(a), bins(b)
	moves := map[string]string{} // b prefix -> a prefix
	for svc, inB := range bb {
		var gone, added []string
		for bin := range ba[svc] {
			if !inB[bin] {
				gone = append(gone, bin)
			}
		}
		for bin := range inB {
			if !ba[svc][bin] {
				added = append(added, bin)
			}
		}
		if len(gone) == 1 && len(added) == 1 {
			moves[deploysDir+svc+"/"+added[0]] = deploysDir + svc + "/" + gone[0]
		}
	}
	if len(moves) == 0 {
		return b, nil, nil
	}
	move := func(p string) (string, bool) {
		for from, to := range moves {
			if p == from || strings.HasPrefix(p, from+"/") {
				return to + p[len(from):], true
			}
		}
		return p, false
	}
	renamed := map[string]*tree.Entry{}
	entries := make([]*tree.Entry, 0, len(b.Entries))
	for _, e := range b.Entries {
		np, ok := move(e.Path())
		if !ok {
			entries = append(entries, e)
			continue
		}
		c := *e
		c.SetPath(np)
		if c.Type == tree.Hardlink {
			c.Target, _ = move(c.Target)
		}
		renamed[np] = e
		entries = append(entries, &c)
	}
	t, err := tree.New(entries)
	return t, renamed, err
}

func pathOf(a, b *tree.Entry) string {
	if a != nil {
		return a.Path()
	}
	return b.Path()
}

func compare(ctx context.Context, a, b *tree.Entry, opts Options, same map[*tree.Entry]bool) ([]Kind, error) {
	switch {
	case a == nil:
		return []Kind{Added}, nil
	case b == nil:
		return []Kind{Removed}, nil
	}
	var k []Kind
	if a.Type != b.Type {
		k = append(k, Type)
	} else {
		switch a.Type {
		case tree.File:
			eq, compared := same[a]
			if !compared {
				var err error
				if eq, err = sameContent(ctx, a, b); err != nil {
					return nil, err
				}
			}
			if !eq {
				k = append(k, Content)
			}
		case tree.Symlink, tree.Hardlink:
			if a.Target != b.Target {
				k = append(k, Target)
			}
		}
	}
	if a.Mode != b.Mode && a.Type != tree.Symlink {
		k = append(k, Mode)
	}
	if a.UID != b.UID || a.GID != b.GID {
		k = append(k, Owner)
	}
	if !tree.EqualXattrs(a.Xattrs(), b.Xattrs()) {
		k = append(k, Xattrs)
	}
	if opts.Times && a.ModTime != b.ModTime {
		k = append(k, Time)
	}
	return k, nil
}

func sameContent(ctx context.Context, a, b *tree.Entry) (bool, error) {
	if a.Size != b.Size {
		return false, nil
	}
	da, err := digest(ctx, a)
	if err != nil {
		return false, err
	}
	db, err := digest(ctx, b)
	if err != nil {
		return false, err
	}
	return da == db, nil
}

// digest returns e's content digest, computing it when the tree lacks one.
func digest(ctx context.Context, e *tree.Entry) (tree.Digest, error) {
	if !e.Digest.IsZero() {
		return e.Digest, nil
	}
	if e.Content == nil {
		return tree.Digest{}, fmt.Errorf("%s: no digest and no content to compare", e.Path())
	}
	rc, err := e.Content.Open()
	if err != nil {
		return tree.Digest{}, fmt.Errorf("%s: %w", e.Path(), err)
	}
	defer rc.Close()
	d, err := sha256Reader(tree.ContextReader(ctx, rc))
	if err != nil {
		return tree.Digest{}, fmt.Errorf("%s: %w", e.Path(), err)
	}
	e.Digest = d
	return d, nil
}

// Summary counts changes.
type Summary struct {
	Added    int `json:"added"`
	Removed  int `json:"removed"`
	Modified int `json:"modified"`
}

// Summarize counts changes by whether the path was added, removed or
// changed in place.
func Summarize(changes []Change) Summary {
	var s Summary
	for i := range changes {
		switch {
		case changes[i].Has(Added):
			s.Added++
		case changes[i].Has(Removed):
			s.Removed++
		default:
			s.Modified++
		}
	}
	return s
}

// top is the group a change is listed under: its path's first element,
// with a slash when that is a directory, so that a top-level directory
// and what is below it share one group.
func top(c *Change) string {
	if i := strings.IndexByte(c.Path, '/'); i >= 0 {
		return c.Path[:i] + "/"
	}
	if c.A != nil && c.A.Type == tree.Dir || c.B != nil && c.B.Type == tree.Dir {
		return c.Path + "/"
	}
	return c.Path
}

// WriteText writes changes for people, grouped by top directory: one line
// per path with its change letters and what changed.
func WriteText(w io.Writer, changes []Change) error {
	group := ""
	for i := range changes {
		c := &changes[i]
		if g := top(c); g != group {
			if group != "" {
				fmt.Fprintln(w)
			}
			group = g
			fmt.Fprintln(w, tree.Quote(g))
		}
		var flags strings.Builder
		for _, k := range order {
			if c.Has(k) {
				flags.WriteString(letters[k])
			}
		}
		if _, err := fmt.Fprintf(w, "  %-4s %s%s\n", flags.String(), tree.Quote(c.Path), detail(c)); err != nil {
			return err
		}
	}
	return nil
}

func detail(c *Change) string {
	a, b := c.A, c.B
	switch {
	case c.Has(Added):
		return describe(b)
	case c.Has(Removed):
		return describe(a)
	}
	var d []string
	if c.Has(Renamed) {
		d = append(d, "was "+tree.Quote(c.From))
	}
	if c.Has(Type) {
		d = append(d, fmt.Sprintf("%s -> %s", a.Type, b.Type))
	}
	if c.Has(Content) {
		d = append(d, fmt.Sprintf("%d -> %d bytes", a.Size, b.Size))
	}
	if c.Has(Target) {
		d = append(d, fmt.Sprintf("-> %s (was %s)", tree.Quote(b.Target), tree.Quote(a.Target)))
	}
	if c.Has(Mode) {
		d = append(d, fmt.Sprintf("mode %04o -> %04o", a.Mode, b.Mode))
	}
	if c.Has(Owner) {
		d = append(d, fmt.Sprintf("owner %d:%d -> %d:%d", a.UID, a.GID, b.UID, b.GID))
	}
	if c.Has(Xattrs) {
		d = append(d, "xattrs "+xattrNames(a)+" -> "+xattrNames(b))
	}
	if c.Has(Time) {
		d = append(d, fmt.Sprintf("mtime %d -> %d", a.ModTime, b.ModTime))
	}
	if len(d) == 0 {
		return ""
	}
	return "  (" + strings.Join(d, ", ") + ")"
}

func describe(e *tree.Entry) string {
	switch e.Type {
	case tree.Symlink:
		return " -> " + tree.Quote(e.Target)
	case tree.Hardlink:
		return " => " + tree.Quote(e.Target)
	case tree.Dir:
		return "/"
	}
	return fmt.Sprintf("  (%d bytes)", e.Size)
}

func xattrNames(e *tree.Entry) string {
	if len(e.Xattrs()) == 0 {
		return "none"
	}
	var n []string
	for _, x := range e.Xattrs() {
		n = append(n, x.Name)
	}
	return strings.Join(n, ",")
}
