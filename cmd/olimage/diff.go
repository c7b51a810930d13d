package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/artifact"
	"github.com/internetarchive/olimage/diff"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

type diffOptions struct {
	json        bool
	noManifests bool
	insecure    bool
	content     bool
	times       bool
	paths       []string
	progress    bool
}

func newDiffCmd(e *env) *cobra.Command {
	var opts diffOptions
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two images, manifests, registry images or roles",
		Long: `Compare A and B, each an image file (raw, .zst, .gz, GPT disk), a manifest
JSON (plan --json output, a sidecar IMAGE.manifest.json, or an image's
.olimage/manifest.json), an image in a registry (HOST/REPO:TAG or
HOST/REPO@sha256:..., of which only the sidecar manifest is fetched), or a
ROLE of the fleet (what build would write), and list every path that
differs, grouped by top directory:

` + diff.Legend + `

When both sides carry manifests (images built by olimage, manifests), they
are compared without reading file contents; otherwise, or with
--no-manifests, content is read from the images: two images are compared
byte by byte, anything else by sha256 (and --json hashes every file, for
each side's tree digest). --content adds unified diffs of text files
(binary files say so), read from images and roles. mtimes are ignored
unless --times.

EXIT STATUS
  0    A and B are the same
  1    they differ
  2    usage or input error
  130  interrupted`,
		Example: `  olimage diff out/ol-web-2024.01-aaaa.img out/ol-web-2024.02-bbbb.img
  olimage diff -f examples/openlibrary released.img ol-web     # preview the next release
  olimage diff --content --path etc A.img B.img
  olimage diff --json A.img.manifest.json B.img.manifest.json
  olimage diff registry.example.org/ol/ol-web:2024.01 registry.example.org/ol/ol-web:2024.02`,
		Args: exactArgs(2, "A B"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return buffered(e.stdout, func(w io.Writer) error { return runDiff(e, opts, args[0], args[1], w) })
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.diff/v1)")
	cmd.Flags().BoolVar(&opts.content, "content", false, "show unified diffs of changed text files")
	cmd.Flags().BoolVar(&opts.times, "times", false, "report mtime changes too")
	addInsecure(cmd, &opts.insecure)
	cmd.Flags().BoolVar(&opts.noManifests, "no-manifests", false, "read both sides' content even when they carry manifests")
	cmd.Flags().StringArrayVar(&opts.paths, "path", nil, "only paths at or below this path or matching this glob (repeatable)")
	addProgressFlag(cmd, &opts.progress)
	return cmd
}

func runDiff(e *env, opts diffOptions, a, b string, out io.Writer) error {
	if !opts.content && !opts.noManifests {
		// Comparing manifests is short and its heap is mostly what it
		// keeps to the end: collecting garbage in between costs a quarter
		// of the comparison for nothing. A memory limit keeps it bounded.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
	}
	// Two images read in full are compared byte by byte, hashing nothing,
	// except for --json, which gives each side's tree digest: that needs
	// every file's sha256.
	listOnly := (opts.content || opts.noManifests) && !opts.json
	ctx, stop := newProgress(e.stderr, opts.progress && !opts.json && !e.quiet).reads(e.ctx)
	defer stop()
	e = e.withContext(ctx)
	sa, sb, err := openPair(e, a, b, !opts.content && !opts.noManifests, listOnly, registryClient(opts.insecure))
	if err != nil {
		return err
	}
	defer sa.Close()
	defer sb.Close()
	dopts := diff.Options{Paths: opts.paths, Times: opts.times}
	var changes []diff.Change
	var da, db []manifest.Chunk
	byChunks := false
	if sa.Body != nil && sb.Body != nil {
		da, db, byChunks = manifest.Differing(sa.Body, sb.Body)
	}
	if byChunks {
		changes, err = diff.Chunks(e.ctx, da, db, dopts)
	} else {
		for _, s := range []*operand.Operand{sa, sb} {
			if _, err := s.LoadTree(); err != nil {
				if s.Kind == operand.Image {
					return hintError{fmt.Errorf("the manifest in %w", err), "compare the images' contents with --no-manifests; olimage verify checks an image against its manifest"}
				}
				return err
			}
		}
		changes, err = diff.Trees(e.ctx, sa.Tree, sb.Tree, dopts)
	}
	stop()
	if err != nil {
		return err
	}
	if opts.json {
		if err := writeDiffJSON(out, sa, sb, changes, opts.content); err != nil {
			return err
		}
	} else {
		if err := diff.WriteText(out, changes); err != nil {
			return err
		}
		if opts.content {
			if err := writeContentDiffs(out, changes); err != nil {
				return err
			}
		}
		if len(changes) > 0 {
			if act := activationChanges(sa, sb); len(act) > 0 {
				fmt.Fprintln(out, "\nactivation:")
				for _, a := range act {
					fmt.Fprintln(out, a)
				}
			}
			s := diff.Summarize(changes)
			fmt.Fprintf(out, "\n%d added, %d removed, %d modified\n", s.Added, s.Removed, s.Modified)
		}
	}
	if len(changes) > 0 {
		return errFindings
	}
	return nil
}

// openPair opens both sides. Manifests are used only if both sides have
// one; comparing a manifest with hashed content would be comparing
// different things.
//
// With listOnly, two images are read without hashing their files: diff
// compares their contents itself, byte by byte.
func openPair(e *env, a, b string, manifests, listOnly bool, reg *artifact.Client) (*operand.Operand, *operand.Operand, error) {
	o := operand.Options{Fleet: e.fleet, Manifests: manifests, Registry: reg, Role: func(name string) (*roles.Fleet, *roles.Role, error) {
		// Errors of other roles of the fleet do not stop a diff of this one.
		if f, err := e.loadFleet(); f == nil {
			return nil, nil, operand.NoFleetError(name, err)
		}
		return e.role(name)
	}}
	open := func(name string) (*operand.Operand, error) { return operand.Open(e.ctx, name, o) }
	if listOnly && operand.IsImage(a) && operand.IsImage(b) {
		open = func(name string) (*operand.Operand, error) { return operand.OpenImage(e.ctx, name, operand.Listing) }
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
	if manifests && (sa.Manifest == nil) != (sb.Manifest == nil) {
		// Re-read the image side that used its manifest from its content:
		// comparing a manifest with hashed content would mix two claims.
		for _, s := range []**operand.Operand{&sa, &sb} {
			if (*s).Kind == operand.Image && (*s).Manifest != nil {
				name := (*s).Name
				(*s).Close()
				var err error
				if *s, err = operand.OpenImage(e.ctx, name, operand.Digests); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	return sa, sb, nil
}

func writeContentDiffs(out io.Writer, changes []diff.Change) error {
	for _, c := range changes {
		cd, err := contentDiff(c)
		if err != nil {
			return err
		}
		switch {
		case cd == nil:
		case cd.note != "":
			fmt.Fprintf(out, "\n%s\n", cd.note)
		default:
			fmt.Fprintf(out, "\n%s", cd.text)
		}
	}
	return nil
}

// contentDiffOf is one change's content comparison: a unified diff of
// text, or a note saying why there is none.
type contentDiffOf struct {
	text   string
	note   string
	binary bool
}

// contentDiff compares the content of a change's two sides; nil when the
// change does not concern content or neither side has any.
func contentDiff(c diff.Change) (*contentDiffOf, error) {
	if !c.Has(diff.Content) && !c.Has(diff.Added) && !c.Has(diff.Removed) && !c.Has(diff.Type) {
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
		return &contentDiffOf{note: tree.Quote(c.Path) + ": content not available from a manifest"}, nil
	}
	if !oka || !okb {
		return &contentDiffOf{note: fmt.Sprintf("Binary files %s and %s differ", tree.Quote("a/"+c.Path), tree.Quote("b/"+c.Path)), binary: true}, nil
	}
	if da == nil && db == nil {
		return nil, nil
	}
	from := c.Path
	if c.From != "" {
		from = c.From
	}
	var buf bytes.Buffer
	if err := diff.Unified(&buf, tree.Quote("a/"+from), tree.Quote("b/"+c.Path), da, db); err != nil {
		return nil, err
	}
	return &contentDiffOf{text: buf.String()}, nil
}

// textOf reads a file entry's content; ok is false for binary or too large.
func textOf(e *tree.Entry) ([]byte, bool, error) {
	if e == nil || e.Type != tree.File || e.Content == nil {
		return nil, true, nil
	}
	if e.Size > diff.MaxText {
		return nil, false, nil
	}
	rc, err := e.Content.Open()
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", e.Path, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, diff.MaxText+1)); err != nil {
		return nil, false, fmt.Errorf("%s: %w", e.Path, err)
	}
	return buf.Bytes(), diff.IsText(buf.Bytes()), nil
}

type diffJSON struct {
	Schema  string       `json:"schema"`
	A       sideJSON     `json:"a"`
	B       sideJSON     `json:"b"`
	Summary diff.Summary `json:"summary"`
	Changes []changeJSON `json:"changes"`
	// Activation lists what activate links or makes differently.
	Activation []activationChange `json:"activation,omitempty"`
}

// activationChange is a link or state directory activation makes for
// one side and not the other.
type activationChange struct {
	Op     string `json:"op"`               // "+" (only in B) or "-" (only in A)
	Kind   string `json:"kind"`             // link or state
	Path   string `json:"path"`             // on the root file system: /etc/x
	Target string `json:"target,omitempty"` // a link's target: /1/etc/x
	Owner  string `json:"owner,omitempty"`  // a state directory's owner:group
	Mode   string `json:"mode,omitempty"`   // a state directory's mode
}

func (c activationChange) String() string {
	if c.Kind == "link" {
		return fmt.Sprintf("%s link %s -> %s", c.Op, tree.Quote(c.Path), tree.Quote(c.Target))
	}
	return fmt.Sprintf("%s state %s %s %s", c.Op, tree.Quote(c.Path), c.Owner, c.Mode)
}

// activationOf is the activation plan of a side: its manifest's, or the
// one its tree calls for (without state, which a tree does not say).
func activationOf(s *operand.Operand) *manifest.Activation {
	if s.Manifest != nil && s.Manifest.Activation != nil {
		return s.Manifest.Activation
	}
	if s.Kind == operand.Image {
		if m, err := s.EmbeddedHead(); err == nil && m.Activation != nil {
			return m.Activation
		}
	}
	if s.Tree != nil {
		return manifest.ActivationFor(s.Tree)
	}
	return nil
}

// activationChanges lists the links and state directories of A's plan
// that B's lacks (-), then B's that A's lacks (+), in plan order.
func activationChanges(sa, sb *operand.Operand) []activationChange {
	a, b := activationOf(sa), activationOf(sb)
	if a == nil || b == nil {
		return nil
	}
	items := func(op string, p *manifest.Activation) []activationChange {
		var out []activationChange
		for _, l := range p.Links {
			out = append(out, activationChange{Op: op, Kind: "link", Path: "/" + l.Path, Target: path.Join(p.Mount, l.Target)})
		}
		for _, s := range p.State {
			out = append(out, activationChange{Op: op, Kind: "state", Path: "/" + s.Path, Owner: nameOr(s.Owner, s.UID) + ":" + nameOr(s.Group, s.GID), Mode: s.Mode})
		}
		return out
	}
	la, lb := items("-", a), items("+", b)
	key := func(c activationChange) activationChange { c.Op = ""; return c }
	in := func(list []activationChange) map[activationChange]bool {
		m := map[activationChange]bool{}
		for _, c := range list {
			m[key(c)] = true
		}
		return m
	}
	ina, inb := in(la), in(lb)
	var out []activationChange
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

type sideJSON struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Role string `json:"role,omitempty"`
	Tree string `json:"tree"`
}

type changeJSON struct {
	Path    string          `json:"path"`
	From    string          `json:"from,omitempty"` // path in A, inside a renamed deploy
	Changes []diff.Kind     `json:"changes"`
	A       *manifest.Entry `json:"a,omitempty"`
	B       *manifest.Entry `json:"b,omitempty"`
	// With --content: a unified diff of text content, or why there is none.
	Diff       string `json:"diff,omitempty"`
	Binary     bool   `json:"binary,omitempty"`
	DiffAbsent string `json:"diff_absent,omitempty"`
}

func side(s *operand.Operand) sideJSON {
	j := sideJSON{Name: s.Name, Kind: s.Kind}
	if s.Tree != nil {
		j.Tree = manifest.TreeDigest(s.Tree)
	} else if s.Manifest != nil {
		j.Tree = s.Manifest.TreeDigest // the manifest's own word: nothing was decoded
	}
	if m := s.Manifest; m != nil {
		j.Role = m.Role
	} else if s.Kind == operand.Image {
		if m, err := s.EmbeddedHead(); err == nil {
			j.Role = m.Role
		}
	}
	return j
}

func writeDiffJSON(out io.Writer, sa, sb *operand.Operand, changes []diff.Change, content bool) error {
	doc := diffJSON{Schema: "olimage.diff/v1", A: side(sa), B: side(sb), Summary: diff.Summarize(changes), Changes: []changeJSON{}, Activation: activationChanges(sa, sb)}
	for _, c := range changes {
		cj := changeJSON{Path: c.Path, From: c.From, Changes: c.Kinds}
		if c.A != nil {
			m := manifest.FromEntry(c.A)
			cj.A = &m
		}
		if c.B != nil {
			m := manifest.FromEntry(c.B)
			cj.B = &m
		}
		if content {
			cd, err := contentDiff(c)
			if err != nil {
				return err
			}
			if cd != nil {
				cj.Diff, cj.Binary = cd.text, cd.binary
				if !cd.binary {
					cj.DiffAbsent = cd.note
				}
			}
		}
		doc.Changes = append(doc.Changes, cj)
	}
	return writeJSON(out, doc)
}
