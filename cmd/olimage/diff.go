package main

import (
	"errors"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/diff"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/roles"
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
	ctx, stop := newProgress(e.stderr, opts.progress && !opts.json && !e.quiet).reads(e.ctx)
	defer stop()
	e = e.withContext(ctx)
	dopts := diff.CompareOptions{
		Options:     diff.Options{Paths: opts.paths, Times: opts.times},
		NoManifests: opts.noManifests,
		Content:     opts.content,
		TreeDigests: opts.json, // each side's tree digest is in the document
	}
	open := operand.DiffOpener(operand.Options{Fleet: e.fleet, Registry: registryClient(opts.insecure), Role: func(name string) (*roles.Fleet, *roles.Role, error) {
		// Errors of other roles of the fleet do not stop a diff of this one.
		if _, err := e.loadFleet(); err != nil {
			return nil, nil, operand.NoFleetError(name, err)
		}
		return e.role(name)
	}})
	if dopts.ByManifests() {
		// Comparing manifests is short and its heap is mostly what it
		// keeps to the end: collecting garbage in between costs a quarter
		// of the comparison for nothing. A memory limit keeps it bounded.
		// Both are the process's settings: the command's to make, not
		// package diff's.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
	}
	res, err := diff.Compare(ctx, a, b, open, dopts)
	stop()
	var me *diff.EmbeddedManifestError
	if errors.As(err, &me) {
		return hintError{err, "compare the images' contents with --no-manifests; olimage verify checks an image against its manifest"}
	}
	if err != nil {
		return err
	}
	defer res.Close()
	if opts.json {
		if err := writeDiffJSON(out, res, opts.content); err != nil {
			return err
		}
	} else if err := res.WriteText(out); err != nil {
		return err
	}
	if len(res.Changes) > 0 {
		return errFindings
	}
	return nil
}

type diffJSON struct {
	Schema  string       `json:"schema"`
	A       sideJSON     `json:"a"`
	B       sideJSON     `json:"b"`
	Summary diff.Summary `json:"summary"`
	Changes []changeJSON `json:"changes"`
	// Activation lists what activate links or makes differently.
	Activation []diff.ActivationChange `json:"activation,omitempty"`
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

func side(s diff.Side) sideJSON {
	j := sideJSON{Name: s.Name(), Kind: s.Kind()}
	if t := s.Tree(); t != nil {
		j.Tree = manifest.TreeDigest(t)
	} else if m := s.Manifest(); m != nil {
		j.Tree = m.TreeDigest // the manifest's own word: nothing was decoded
	}
	if m := s.Manifest(); m != nil {
		j.Role = m.Role
	} else if s.Kind() == operand.Image {
		if m, err := s.EmbeddedHead(); err == nil {
			j.Role = m.Role
		}
	}
	return j
}

func writeDiffJSON(out io.Writer, res *diff.Result, content bool) error {
	doc := diffJSON{Schema: "olimage.diff/v1", A: side(res.A), B: side(res.B), Summary: diff.Summarize(res.Changes), Changes: []changeJSON{}, Activation: res.Activation()}
	for i := range res.Changes {
		c := &res.Changes[i]
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
			cd, err := c.ContentDiff()
			if err != nil {
				return err
			}
			if cd != nil {
				cj.Diff, cj.Binary = cd.Text, cd.Binary
				if !cd.Binary {
					cj.DiffAbsent = cd.Note
				}
			}
		}
		doc.Changes = append(doc.Changes, cj)
	}
	return writeJSON(out, doc)
}
