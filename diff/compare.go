package diff

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
)

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
	// Operands opens roles and registry references (Fleet, Role,
	// Registry); Compare sets Manifests itself.
	Operands operand.Options
}

// ByManifests reports whether Compare trusts the manifests of sides that
// carry one, reading no content.
func (o CompareOptions) ByManifests() bool { return !o.Content && !o.NoManifests }

// Result is a comparison of two operands, which it holds open: content
// diffs read them when written. The caller closes it.
type Result struct {
	A, B    *operand.Operand
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

// Compare opens a and b (see operand.Open) and lists what differs. Two
// sides that both carry manifests are compared by them, reading no file
// content, and two manifests olimage wrote by their differing chunks only;
// otherwise, or with NoManifests or Content, content is read: two images
// byte by byte, anything else by sha256.
func Compare(ctx context.Context, a, b string, opts CompareOptions) (*Result, error) {
	sa, sb, err := openPair(ctx, a, b, opts)
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

func compareSides(ctx context.Context, sa, sb *operand.Operand, opts Options) ([]Change, error) {
	if sa.Body != nil && sb.Body != nil {
		if da, db, ok := manifest.Differing(sa.Body, sb.Body); ok {
			return Chunks(ctx, da, db, opts)
		}
	}
	for _, s := range []*operand.Operand{sa, sb} {
		if _, err := s.LoadTree(); err != nil {
			if s.Kind == operand.Image {
				return nil, &EmbeddedManifestError{err}
			}
			return nil, err
		}
	}
	return Trees(ctx, sa.Tree, sb.Tree, opts)
}

// openPair opens both sides. Manifests are used only if both sides have
// one; comparing a manifest with hashed content would be comparing
// different things.
func openPair(ctx context.Context, a, b string, opts CompareOptions) (*operand.Operand, *operand.Operand, error) {
	o := opts.Operands
	o.Manifests = opts.ByManifests()
	open := func(name string) (*operand.Operand, error) { return operand.Open(ctx, name, o) }
	if (opts.Content || opts.NoManifests) && !opts.TreeDigests && operand.IsImage(a) && operand.IsImage(b) {
		// Two images read in full are compared byte by byte: reading
		// them needs no hashing.
		open = func(name string) (*operand.Operand, error) { return operand.OpenImage(ctx, name, operand.Listing) }
	}
	// Both sides at once: each is a parse or a read of similar cost.
	var sb *operand.Operand
	var errB error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sb, errB = open(b)
	}()
	sa, errA := open(a)
	<-done
	if errA != nil || errB != nil {
		for _, s := range []*operand.Operand{sa, sb} {
			if s != nil {
				s.Close()
			}
		}
		if errA != nil && errB != nil && errA.Error() == errB.Error() {
			errB = nil // one broken role named twice, or one fleet error: say it once
		}
		return nil, nil, errors.Join(errA, errB)
	}
	if o.Manifests && (sa.Manifest == nil) != (sb.Manifest == nil) {
		// Re-read the image side that used its manifest from its content:
		// comparing a manifest with hashed content would mix two claims.
		for _, s := range []**operand.Operand{&sa, &sb} {
			if (*s).Kind == operand.Image && (*s).Manifest != nil {
				name := (*s).Name
				(*s).Close()
				var err error
				if *s, err = operand.OpenImage(ctx, name, operand.Digests); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	return sa, sb, nil
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
