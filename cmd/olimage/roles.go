package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

type rolesOptions struct {
	json     bool
	abstract bool
}

func newRolesCmd(e *env) *cobra.Command {
	var opts rolesOptions
	cmd := &cobra.Command{
		Use:   "roles",
		Short: "List the fleet's roles and their overlays",
		Long: `List every role of the fleet with its overlays in merge order: name,
source kind and source (relative to the fleet directory). Roles marked
abstract exist only to be extended and are not built.`,
		Example: `  olimage roles -f examples/openlibrary
  olimage roles -f examples/openlibrary --json | jq '.roles[].name'`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return buffered(e.stdout, func(w io.Writer) error { return runRoles(e, opts, w) })
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.roles/v1)")
	cmd.Flags().BoolVar(&opts.abstract, "abstract", true, "include abstract roles")
	return cmd
}

// rolesJSON is roles --json's document.
type rolesJSON struct {
	Schema string     `json:"schema"`
	Roles  []roleJSON `json:"roles"`
}

type roleJSON struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Extends     string        `json:"extends,omitempty"`
	Abstract    bool          `json:"abstract,omitempty"`
	File        string        `json:"file"`
	Overlays    []overlayJSON `json:"overlays"`
}

type overlayJSON struct {
	Name    string            `json:"name"`
	Kind    roles.OverlayKind `json:"kind"`
	Source  string            `json:"source,omitempty"` // relative to the fleet directory
	Files   int               `json:"files,omitempty"`  // inline entries
	Deploy  *deployJSON       `json:"deploy,omitempty"`
	Pos     string            `json:"declared"`
	summary string
}

type deployJSON struct {
	Service  string `json:"service"`
	Revision string `json:"revision,omitempty"`
	Link     string `json:"link"`
	Active   bool   `json:"active"`
}

func runRoles(e *env, opts rolesOptions, out io.Writer) error {
	f, err := e.loadFleet()
	if err != nil {
		return err
	}
	err = f.Err() // said after the roles that load
	var list []roleJSON
	for _, name := range f.RoleNames(opts.abstract) {
		r := f.Roles[name]
		rj := roleJSON{Name: name, Description: r.Description, Extends: r.Extends, Abstract: r.Abstract, File: rel(f.Dir, r.File)}
		for _, o := range r.Overlays {
			oj := overlayJSON{Name: o.Name, Kind: o.Kind, Files: len(o.Files), Pos: relPos(f.Dir, o.Pos), summary: describeSource(f, o)}
			if o.Source != "" {
				oj.Source = rel(f.Dir, o.Source)
			}
			if d := o.Deploy; d != nil {
				oj.Deploy = &deployJSON{Service: d.Service, Revision: d.Revision, Link: d.Link, Active: d.Active}
			}
			rj.Overlays = append(rj.Overlays, oj)
		}
		list = append(list, rj)
	}
	if opts.json {
		if list == nil {
			list = []roleJSON{}
		}
		if werr := writeJSON(out, rolesJSON{Schema: "olimage.roles/v1", Roles: list}); werr != nil {
			return werr
		}
		return err
	}
	for i, r := range list {
		if i > 0 {
			fmt.Fprintln(out)
		}
		head := r.Name
		if r.Abstract {
			head += " (abstract)"
		}
		if r.Extends != "" {
			head += " extends " + r.Extends
		}
		if r.Description != "" {
			head += ": " + r.Description
		}
		fmt.Fprintln(out, head)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for j, o := range r.Overlays {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", j+1, o.Name, o.Kind, o.summary)
		}
		tw.Flush()
	}
	// Roles with errors are left out above; say why.
	return err
}

func describeSource(f *roles.Fleet, o *roles.Overlay) string {
	switch o.Kind {
	case roles.FilesOverlay:
		if len(o.Files) == 1 {
			return "1 inline entry"
		}
		return fmt.Sprintf("%d inline entries", len(o.Files))
	case roles.DeployOverlay:
		return fmt.Sprintf("%s -> %s/%s/ (link %s)", rel(f.Dir, o.Source), tree.DeploysDir, o.Deploy.Service, o.Deploy.Link)
	}
	return rel(f.Dir, o.Source)
}

// rel shows p relative to the fleet directory, the way fleet files name it.
func rel(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}

func relPos(dir string, p roles.Pos) string {
	p.File = rel(dir, p.File)
	return p.String()
}
