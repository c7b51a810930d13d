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
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/source"
	"github.com/internetarchive/olimage/tree"
)

// Finding is one problem, located.
type Finding struct {
	Where string `json:"where"` // a structure ("group 3 descriptor", "inode 12") or a path
	Msg   string `json:"message"`
}

func (f Finding) String() string { return f.Where + ": " + f.Msg }

// Report is the outcome of verifying one image.
type Report struct {
	Image    string    `json:"image"`
	Role     string    `json:"role,omitempty"`
	Entries  int       `json:"entries"` // entries checked against the manifest
	Bytes    int64     `json:"bytes"`   // bytes of content read and hashed
	Findings []Finding `json:"findings"`
}

// Image verifies the image source s (opened with source.OpenImage).
func Image(ctx context.Context, s *source.Source) (*Report, error) {
	rep := &Report{Image: s.Name, Findings: []Finding{}}
	for _, f := range s.FS.Check(ctx) {
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
	if got := manifest.TreeDigest(want); got != m.TreeDigest {
		rep.Findings = append(rep.Findings, Finding{Where: manifest.Path, Msg: fmt.Sprintf("tree digest %s does not match its entries (%s)", short(m.TreeDigest), short(got))})
	}
	// The image's own tree, every file hashed, against the manifest.
	have, err := s.HashedTree(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimPrefix(err.Error(), s.Name+": ")
		rep.Findings = append(rep.Findings, Finding{Where: "file tree", Msg: "cannot be read: " + msg})
		return rep, nil
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
	for _, e := range have.Entries {
		if e.Type != tree.File {
			continue // a hard link's bytes are its first name's
		}
		rep.Bytes += e.Size
	}
	return rep, nil
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
			what = append(what, fmt.Sprintf("content differs from the manifest's sha256 %s", short(c.A.Digest)))
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
