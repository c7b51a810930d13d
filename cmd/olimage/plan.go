package main

import (
	"fmt"
	"io"
	"path"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

type planOptions struct {
	json bool
}

func newPlanCmd(e *env) *cobra.Command {
	var opts planOptions
	cmd := &cobra.Command{
		Use:   "plan ROLE",
		Short: "Show the merged tree a role's image would hold",
		Long: `Merge ROLE's overlays and print the resulting tree, one line per path in
tree order: type, mode, owner:group, size, the first 12 hex digits of the
content's sha256, the overlay that supplied it, and the path (symlinks show
their target, hard links the path they share an inode with).

With --json, print the document described in docs/json.md (schema
"olimage.plan/v1"): the role, epoch, tree digest, every input overlay with
its content digest, and every entry with its full metadata and provenance.
The output depends only on the fleet's contents, never on the machine, the
directory, the umask or the time zone.`,
		Example: `  olimage plan -f examples/openlibrary ol-web
  olimage plan -f examples/openlibrary ol-web --json | jq '.entries[] | select(.type=="symlink")'`,
		Args: exactArgs(1, "ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return buffered(e.stdout, func(w io.Writer) error { return runPlan(e, opts, args[0], w) })
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.plan/v1)")
	return cmd
}

func runPlan(e *env, opts planOptions, role string, out io.Writer) error {
	f, r, res, err := e.merge(role)
	if err != nil {
		return err
	}
	defer res.Close()
	if opts.json {
		return manifest.WritePlan(out, manifest.Plan{
			Schema: manifest.PlanSchema, Fleet: f.Name, Role: r.Name, Epoch: res.Epoch,
			Digest: manifest.TreeDigest(res.Tree), Inputs: res.Inputs, Activation: builder.Activation(r, res.Tree),
			Deploys: res.Deploys,
		}, res.Tree)
	}
	// Sizes align right, in a column as wide as the largest.
	width := len("SIZE")
	for _, en := range res.Tree.Entries {
		width = max(width, len(fmt.Sprint(en.Size)))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TYPE\tMODE\tOWNER\t%*s\tSHA256\tOVERLAY\tPATH\n", width, "SIZE")
	var bytes int64
	for _, en := range res.Tree.Entries {
		size, sum := "-", "-"
		if en.Type == tree.File || en.Type == tree.Hardlink {
			size, sum = fmt.Sprint(en.Size), short(en.Digest.String())
		}
		if en.Type == tree.File {
			bytes += en.Size
		}
		fmt.Fprintf(tw, "%s\t%04o\t%s\t%*s\t%s\t%s\t%s\n", en.Type, en.Mode, owner(en), width, size, sum, en.Overlay(), pathWithTarget(en))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range res.Deploys {
		for _, b := range d.Bins {
			if b.From != "" {
				fmt.Fprintf(out, "history: %s/%s/%s copied from %s\n", tree.DeploysDir, d.Service, b.Bin, b.From)
			}
		}
	}
	if _, err := fmt.Fprintf(out, "%d entries, %d bytes of file content, tree %s\n", res.Tree.Len(), bytes, short(manifest.TreeDigest(res.Tree))); err != nil {
		return err
	}
	return writeActivation(out, builder.Activation(r, res.Tree))
}

// writeActivation prints what activate will do with the mounted volume.
func writeActivation(out io.Writer, a *manifest.Activation) error {
	fmt.Fprintf(out, "\nactivation (volume mounted at %s): %s, %s\n", a.Mount, plural(len(a.Links), "link", "links"), plural(len(a.State), "state directory", "state directories"))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, l := range a.Links {
		fmt.Fprintf(tw, "  link\t%s\t-> %s\n", tree.Quote("/"+l.Path), tree.Quote(path.Join(a.Mount, l.Target)))
	}
	for _, s := range a.State {
		fmt.Fprintf(tw, "  state\t%s\t%s %s\n", tree.Quote("/"+s.Path), s.OwnerGroup(), s.Mode)
	}
	return tw.Flush()
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

func owner(e *tree.Entry) string {
	u, g := e.Owner(), e.Group()
	if u == "" {
		u = fmt.Sprint(e.UID)
	}
	if g == "" {
		g = fmt.Sprint(e.GID)
	}
	return u + ":" + g
}

func pathWithTarget(e *tree.Entry) string {
	switch e.Type {
	case tree.Symlink:
		return tree.Quote(e.Path()) + " -> " + tree.Quote(e.Target)
	case tree.Hardlink:
		return tree.Quote(e.Path()) + " => " + tree.Quote(e.Target)
	}
	return tree.Quote(e.Path())
}
