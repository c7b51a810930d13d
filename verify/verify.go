// Package verify checks an image: its ext4 structures (checksums, bitmaps
// against use, via ext4/reader) and then every entry and every byte of
// content against the manifest embedded in it. It reports findings; it
// repairs nothing.
package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/internetarchive/olimage/diff"
	"github.com/internetarchive/olimage/ext4/reader"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// Opened is an opened image as Image checks it; an *operand.Operand from
// operand.OpenImage is one.
type Opened interface {
	Name() string   // as the user gave it
	FS() *reader.FS // its file system
	// EmbeddedManifest is the manifest the image carries, its entries as
	// a tree.
	EmbeddedManifest() (*manifest.Manifest, *tree.Tree, error)
	// ListedTree is the image's own tree, every entry's metadata without
	// its content, less what ext4 and olimage add to every volume
	// (lost+found, the manifest).
	ListedTree(ctx context.Context) (*tree.Tree, error)
}

// Finding is one problem, located.
type Finding struct {
	Where string `json:"where"` // a structure ("group 3 descriptor", "inode 12") or a path
	Msg   string `json:"message"`
}

// String is the finding as one line of a report: a path in it, which the
// image chose, is quoted if it could break or forge lines.
func (f Finding) String() string { return tree.Quote(f.Where) + ": " + tree.Quote(f.Msg) }

// Report is the outcome of verifying one image.
type Report struct {
	Image    string    `json:"image"`
	Role     string    `json:"role,omitempty"`
	Entries  int       `json:"entries"` // entries checked against the manifest
	Bytes    int64     `json:"bytes"`   // bytes of content read and hashed
	Findings []Finding `json:"findings"`
}

// Image verifies the opened image s.
func Image(ctx context.Context, s Opened) (*Report, error) {
	rep := &Report{Image: s.Name(), Findings: []Finding{}}
	for _, f := range s.FS().Check(ctx) {
		where := f.Structure
		if f.Path != "" {
			where += " (" + f.Path + ")"
		}
		rep.Findings = append(rep.Findings, Finding{Where: where, Msg: f.Msg})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, want, err := s.EmbeddedManifest()
	if err != nil {
		rep.Findings = append(rep.Findings, Finding{Where: manifest.Path, Msg: fmt.Sprintf("cannot read the manifest: %v", err)})
		return rep, nil
	}
	rep.Role = m.Role
	if m.Schema != manifest.ImageSchema {
		// Another version may mean anything by its fields: comparing the
		// image with it would be a guess, and an ok from a guess is worse
		// than none.
		rep.Findings = append(rep.Findings, Finding{Where: manifest.Path, Msg: fmt.Sprintf("schema %q: this olimage verifies %s only", m.Schema, manifest.ImageSchema)})
		return rep, nil
	}
	if got := manifest.TreeDigest(want); got != m.TreeDigest {
		rep.Findings = append(rep.Findings, Finding{Where: manifest.Path, Msg: fmt.Sprintf("tree digest %s does not match its entries (%s)", short(m.TreeDigest), short(got))})
	}
	// The image's own tree against the manifest: sizes first, and only
	// files of the size the manifest gives are hashed.
	have, err := s.ListedTree(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimPrefix(err.Error(), s.Name()+": ")
		rep.Findings = append(rep.Findings, Finding{Where: "file tree", Msg: "cannot be read: " + msg})
		return rep, nil
	}
	hashed, findings := hash(ctx, s, have, want)
	rep.Findings = append(rep.Findings, findings...)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	changes, err := diff.Trees(ctx, want, have, diff.Options{Times: true, Exact: true})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Findings = append(rep.Findings, Finding{Where: "file tree", Msg: err.Error()})
		return rep, nil
	}
	for _, c := range changes {
		rep.Findings = append(rep.Findings, Finding{Where: c.Path, Msg: describe(c)})
	}
	rep.Entries = want.Len()
	rep.Bytes = hashed
	return rep, nil
}

// hash sets the digests of the image's files whose size is the one the
// manifest gives. An inode may claim any size, up to 2^64 bytes of holes
// that read as zeros: a file whose size differs is reported as such, not
// read. (Sizes that agree are hashed whatever they are: olimage builds
// sparse files larger than the image they are in.)
func hash(ctx context.Context, s Opened, have, want *tree.Tree) (bytes int64, findings []Finding) {
	var todo []*tree.Entry
	for _, e := range have.Entries {
		if w := want.Get(e.Path()); e.Type == tree.File && w != nil && w.Type == tree.File && w.Size == e.Size {
			todo = append(todo, e) // a hard link's bytes are its first name's
			bytes += e.Size
		}
	}
	if err := s.FS().Digest(ctx, todo); err != nil && ctx.Err() == nil {
		findings = append(findings, Finding{Where: "file tree", Msg: "cannot be read: " + err.Error()})
	}
	return bytes, findings
}

func describe(c diff.Change) string {
	switch {
	case c.Has(diff.Added):
		return "in the image, not in the manifest"
	case c.Has(diff.Removed):
		return "in the manifest, missing from the image"
	}
	var what []string
	for _, k := range c.Kinds {
		switch k {
		case diff.Content:
			if c.A.Size != c.B.Size {
				what = append(what, fmt.Sprintf("size %d, manifest says %d", c.B.Size, c.A.Size))
				break
			}
			what = append(what, fmt.Sprintf("content differs from the manifest's sha256 %s", short(c.A.Digest.String())))
		case diff.Type:
			what = append(what, fmt.Sprintf("is a %s, manifest says %s", c.B.Type, c.A.Type))
		case diff.Mode:
			what = append(what, fmt.Sprintf("mode %04o, manifest says %04o", c.B.Mode, c.A.Mode))
		case diff.Owner:
			what = append(what, fmt.Sprintf("owner %d:%d, manifest says %d:%d", c.B.UID, c.B.GID, c.A.UID, c.A.GID))
		case diff.Target:
			what = append(what, fmt.Sprintf("links to %q, manifest says %q", c.B.Target, c.A.Target))
		case diff.Xattrs:
			what = append(what, "xattrs differ from the manifest's")
		case diff.Time:
			what = append(what, fmt.Sprintf("mtime %d, manifest says %d", c.B.ModTime, c.A.ModTime))
		}
	}
	return strings.Join(what, "; ")
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
