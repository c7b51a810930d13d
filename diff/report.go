package diff

import (
	"bytes"
	"fmt"
	"io"
	"path"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// ActivationChange is a link or state directory activation makes for
// one side and not the other.
type ActivationChange struct {
	Op     string `json:"op"`               // "+" (only in B) or "-" (only in A)
	Kind   string `json:"kind"`             // link or state
	Path   string `json:"path"`             // on the root file system: /etc/x
	Target string `json:"target,omitempty"` // a link's target: /1/etc/x
	Owner  string `json:"owner,omitempty"`  // a state directory's owner:group
	Mode   string `json:"mode,omitempty"`   // a state directory's mode
}

func (c ActivationChange) String() string {
	if c.Kind == "link" {
		return fmt.Sprintf("%s link %s -> %s", c.Op, tree.Quote(c.Path), tree.Quote(c.Target))
	}
	return fmt.Sprintf("%s state %s %s %s", c.Op, tree.Quote(c.Path), c.Owner, c.Mode)
}

// activationOf is the activation plan of a side: its manifest's, or the
// one its tree calls for (without state, which a tree does not say).
func activationOf(s Side) *manifest.Activation {
	if m := s.Manifest(); m != nil && m.Activation != nil {
		return m.Activation
	}
	if s.Kind() == imageKind {
		if m, err := s.EmbeddedHead(); err == nil && m.Activation != nil {
			return m.Activation
		}
	}
	if t := s.Tree(); t != nil {
		return manifest.ActivationFor(t)
	}
	return nil
}

// Activation lists the links and state directories of A's activation
// plan that B's lacks (-), then B's that A's lacks (+), in plan order.
func (r *Result) Activation() []ActivationChange {
	a, b := activationOf(r.A), activationOf(r.B)
	if a == nil || b == nil {
		return nil
	}
	items := func(op string, p *manifest.Activation) []ActivationChange {
		var out []ActivationChange
		for _, l := range p.Links {
			out = append(out, ActivationChange{Op: op, Kind: "link", Path: "/" + l.Path, Target: path.Join(p.Mount, l.Target)})
		}
		for _, s := range p.State {
			out = append(out, ActivationChange{Op: op, Kind: "state", Path: "/" + s.Path, Owner: s.OwnerGroup(), Mode: s.Mode})
		}
		return out
	}
	la, lb := items("-", a), items("+", b)
	key := func(c ActivationChange) ActivationChange { c.Op = ""; return c }
	in := func(list []ActivationChange) map[ActivationChange]bool {
		m := map[ActivationChange]bool{}
		for _, c := range list {
			m[key(c)] = true
		}
		return m
	}
	ina, inb := in(la), in(lb)
	var out []ActivationChange
	for _, c := range la {
		if !inb[key(c)] {
			out = append(out, c)
		}
	}
	for _, c := range lb {
		if !ina[key(c)] {
			out = append(out, c)
		}
	}
	return out
}

func writeContentDiffs(out io.Writer, changes []Change) error {
	for i := range changes {
		cd, err := changes[i].ContentDiff()
		if err != nil {
			return err
		}
		switch {
		case cd == nil:
		case cd.Note != "":
			fmt.Fprintf(out, "\n%s\n", cd.Note)
		default:
			fmt.Fprintf(out, "\n%s", cd.Text)
		}
	}
	return nil
}

// ContentDiff is one change's content comparison: a unified diff of
// text, or a note saying why there is none.
type ContentDiff struct {
	Text   string // a unified diff
	Note   string // why there is no Text
	Binary bool   // Note says that a side is binary (or too large)
}

// ContentDiff compares the content of the change's two sides, reading
// them; nil when the change does not concern content or neither side has
// any.
func (c *Change) ContentDiff() (*ContentDiff, error) {
	if !c.Has(Content) && !c.Has(Added) && !c.Has(Removed) && !c.Has(Type) {
		return nil, nil
	}
	da, oka, err := textOf(c.A)
	if err != nil {
		return nil, err
	}
	db, okb, err := textOf(c.B)
	if err != nil {
		return nil, err
	}
	if c.A != nil && c.A.Type == tree.File && c.A.Content == nil || c.B != nil && c.B.Type == tree.File && c.B.Content == nil {
		return &ContentDiff{Note: tree.Quote(c.Path) + ": content not available from a manifest"}, nil
	}
	if !oka || !okb {
		return &ContentDiff{Note: fmt.Sprintf("Binary files %s and %s differ", tree.Quote("a/"+c.Path), tree.Quote("b/"+c.Path)), Binary: true}, nil
	}
	if da == nil && db == nil {
		return nil, nil
	}
	from := c.Path
	if c.From != "" {
		from = c.From
	}
	var buf bytes.Buffer
	if err := Unified(&buf, tree.Quote("a/"+from), tree.Quote("b/"+c.Path), da, db); err != nil {
		return nil, err
	}
	return &ContentDiff{Text: buf.String()}, nil
}

// textOf reads a file entry's content; ok is false for binary or too large.
func textOf(e *tree.Entry) ([]byte, bool, error) {
	if e == nil || e.Type != tree.File || e.Content == nil {
		return nil, true, nil
	}
	if e.Size > MaxText {
		return nil, false, nil
	}
	rc, err := e.Content.Open()
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", e.Path(), err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, MaxText+1)); err != nil {
		return nil, false, fmt.Errorf("%s: %w", e.Path(), err)
	}
	return buf.Bytes(), IsText(buf.Bytes()), nil
}
