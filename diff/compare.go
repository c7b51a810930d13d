package diff

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// Side is one opened operand of a comparison: an image, a manifest, a
// role, whatever its Opener made of a name. *operand.Operand is one.
type Side interface {
	Name() string // as the user gave it
	Kind() string // "image" for an image file; anything else is not one
	// Tree is the side's entries; nil while a manifest in olimage's
	// layout is undecoded (Body).
	Tree() *tree.Tree
	// LoadTree decodes Body into Tree if need be, and returns it.
	LoadTree() (*tree.Tree, error)
	// Manifest is the manifest the side carries, if any: its head, the
	// entries being in the tree.
	Manifest() *manifest.Manifest
	// Body is a manifest document in olimage's layout, whose differing
	// chunks alone are decoded (manifest.Differing); nil if none.
	Body() []byte
	// EmbeddedHead is the head of the manifest inside an image; an error
	// for other kinds.
	EmbeddedHead() (*manifest.Manifest, error)
	Close() error
}

// imageKind is the Kind of a side read from an image file (operand.Image).
const imageKind = "image"

// Read says how an Opener reads a side.
type Read int

// The ways Compare asks for a side to be read.
const (
	// ReadManifests takes the tree from the manifest a side carries,
	// reading no content: from an image's embedded manifest when it has
	// one, else as ReadDigests.
	ReadManifests Read = iota
	// ReadDigests reads what a side holds: every file of an image
	// hashed, a manifest's entries, a role's overlays.
	ReadDigests
	// ReadListing reads an image's entries without their content, which
	// Trees then compares byte by byte. Only for names IsImage accepts.
	ReadListing
)

// Opener opens the operands Compare is given. What a name means (an image
// file, a manifest, a registry reference, a role of a fleet) is the
// opener's to say; how much of it is read is Compare's.
// operand.DiffOpener is the one the diff command uses.
type Opener interface {
	// IsImage reports whether name is an image file.
	IsImage(name string) bool
	// Open opens name as read says.
	Open(ctx context.Context, name string, read Read) (Side, error)
}

// CompareOptions say how Compare reads its two operands and what it
// compares.
type CompareOptions struct {
	Options // which paths, and whether mtimes count
	// NoManifests reads both sides' content even when both carry
	// manifests.
	NoManifests bool
	// Content reads content for unified diffs of text files, which the
	// result then writes: from images and roles, not manifests.
	Content bool
	// TreeDigests hashes every file read from an image, for each side's
	// tree digest (Result.Document), where two images read in full would
	// otherwise be compared byte by byte, hashing nothing.
	TreeDigests bool
}

// ByManifests reports whether Compare trusts the manifests of sides that
// carry one, reading no content.
func (o CompareOptions) ByManifests() bool { return !o.Content && !o.NoManifests }

// Result is a comparison of two operands, which it holds open: content
// diffs read them when written. The caller closes it.
type Result struct {
	A, B    Side
	Changes []Change
	content bool // write content diffs
}

// Close closes both operands.
func (r *Result) Close() error { return errors.Join(r.A.Close(), r.B.Close()) }

// EmbeddedManifestError is an image's embedded manifest that cannot be
// read, met when comparing by manifests.
type EmbeddedManifestError struct{ Err error }

func (e *EmbeddedManifestError) Error() string { return "the manifest in " + e.Err.Error() }
func (e *EmbeddedManifestError) Unwrap() error { return e.Err }

// Compare opens a and b with open and lists what differs. Two
// sides that both carry manifests are compared by them, reading no file
// content, and two manifests olimage wrote by their differing chunks only;
// otherwise, or with NoManifests or Content, content is read: two images
// byte by byte, anything else by sha256.
func Compare(ctx context.Context, a, b string, open Opener, opts CompareOptions) (*Result, error) {
	sa, sb, err := openPair(ctx, a, b, open, opts)
	if err != nil {
		return nil, err
	}
	r := &Result{A: sa, B: sb, content: opts.Content}
	if r.Changes, err = compareSides(ctx, sa, sb, opts.Options); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func compareSides(ctx context.Context, sa, sb Side, opts Options) ([]Change, error) {
	if sa.Body() != nil && sb.Body() != nil {
		if da, db, ok := manifest.Differing(sa.Body(), sb.Body()); ok {
			return Chunks(ctx, da, db, opts)
		}
	}
	for _, s := range []Side{sa, sb} {
		if _, err := s.LoadTree(); err != nil {
			if s.Kind() == imageKind {
				return nil, &EmbeddedManifestError{err}
			}
			return nil, err
		}
	}
	return Trees(ctx, sa.Tree(), sb.Tree(), opts)
}

// openPair opens both sides. Manifests are used only if both sides have
// one; comparing a manifest with hashed content would be comparing
// different things.
func openPair(ctx context.Context, a, b string, opener Opener, opts CompareOptions) (Side, Side, error) {
	read := ReadDigests
	if opts.ByManifests() {
		read = ReadManifests
	} else if !opts.TreeDigests && opener.IsImage(a) && opener.IsImage(b) {
		// Two images read in full are compared byte by byte: reading
		// them needs no hashing.
		read = ReadListing
	}
	open := func(name string) (Side, error) { return opener.Open(ctx, name, read) }
	// Both sides at once: each is a parse or a read of similar cost.
	var sb Side
	openedB := par.Beside(func() (err error) { sb, err = open(b); return err })
	sa, errA := open(a)
	errB := openedB()
	if errA != nil || errB != nil {
		closeSides(sa, sb)
		if errA != nil && errB != nil && errA.Error() == errB.Error() {
			errB = nil // one broken role named twice, or one fleet error: say it once
		}
		return nil, nil, errors.Join(errA, errB)
	}
	if read == ReadManifests && (sa.Manifest() == nil) != (sb.Manifest() == nil) {
		// Re-read the image side that used its manifest from its content:
		// comparing a manifest with hashed content would mix two claims.
		for _, s := range []*Side{&sa, &sb} {
			if (*s).Kind() == imageKind && (*s).Manifest() != nil {
				name := (*s).Name()
				(*s).Close()
				var err error
				if *s, err = opener.Open(ctx, name, ReadDigests); err != nil {
					closeSides(sa, sb) // the other one
					return nil, nil, err
				}
			}
		}
	}
	return sa, sb, nil
}

// closeSides closes the sides that opened.
func closeSides(sides ...Side) {
	for _, s := range sides {
		if s != nil {
			s.Close()
		}
	}
}

// WriteText writes the result for people: the changes grouped by top
// directory (WriteText), content diffs when asked for, then, if anything
// differs, what activation does differently and a count.
func (r *Result) WriteText(w io.Writer) error {
	if err := WriteText(w, r.Changes); err != nil {
		return err
	}
	if r.content {
		if err := writeContentDiffs(w, r.Changes); err != nil {
			return err
		}
	}
	if len(r.Changes) == 0 {
		return nil
	}
	if act := r.Activation(); len(act) > 0 {
		fmt.Fprintln(w, "\nactivation:")
		for _, a := range act {
			fmt.Fprintln(w, a)
		}
	}
	s := Summarize(r.Changes)
	_, err := fmt.Fprintf(w, "\n%d added, %d removed, %d modified\n", s.Added, s.Removed, s.Modified)
	return err
}
