package main

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/manifest"
)

// errNoPath is returned when the path is not in the role's tree.
var errNoPath = errors.New("not in the tree")

type explainOptions struct{ json bool }

func newExplainCmd(e *env) *cobra.Command {
	var opts explainOptions
	cmd := &cobra.Command{
		Use:   "explain ROLE PATH",
		Short: "Say where a path of a role's tree comes from",
		Long: `Merge ROLE's overlays and explain PATH (relative to the volume root; a
leading / is ignored): the overlay that supplied it and where that overlay is
declared, the overlays it shadowed, and which rule (file:line) set its owner
and its mode, or that they came from the source. A path that is not in the
tree is an error, which says what removed it if an overlay did.`,
		Example: `  olimage explain -f examples/openlibrary ol-web opt/openlibrary/olsystem
  olimage explain -f examples/openlibrary ol-web /etc/nginx/sites-enabled/openlibrary.conf
  olimage explain -f examples/openlibrary ol-web etc/nginx/nginx.conf --json | jq .supplied`,
		Args: exactArgs(2, "ROLE PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExplain(e, opts, args[0], args[1], e.stdout)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.explain/v1)")
	return cmd
}

// explainJSON is explain --json's document.
type explainJSON struct {
	Schema    string         `json:"schema"`
	Role      string         `json:"role"`
	Entry     manifest.Entry `json:"entry"`
	Supplied  overlayRef     `json:"supplied"`
	Shadowed  []overlayRef   `json:"shadowed"`
	OwnerFrom string         `json:"owner_from"`
	ModeFrom  string         `json:"mode_from"`
	// History names the previous release's image a deploy bin carried
	// over from it was copied from.
	History string `json:"history,omitempty"`
}

// overlayRef names an overlay and where the role declares it.
type overlayRef struct {
	Overlay  string `json:"overlay"`
	Declared string `json:"declared"`
}

func runExplain(e *env, opts explainOptions, role, p string, out io.Writer) error {
	if strings.TrimPrefix(path.Clean("/"+p), "/") == "" {
		return usageError{fmt.Errorf("explain: %q is the volume root, which is not an entry; name a path in it, such as etc", p)}
	}
	f, r, res, err := e.merge(role)
	if err != nil {
		return err
	}
	defer res.Close()
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	en := res.Tree.Get(p)
	if en == nil {
		if why := res.Removal(p); why != "" {
			return hintError{fmt.Errorf("%s: %w of role %s: removed by %s", p, errNoPath, role, why), "'olimage plan " + role + "' lists what the role's tree holds"}
		}
		return hintError{fmt.Errorf("%s: %w of role %s", p, errNoPath, role), "'olimage plan " + role + "' lists what the role's tree holds"}
	}
	declared := map[string]string{}
	for _, o := range r.Overlays {
		declared[o.Name] = relPos(f.Dir, o.Pos)
	}
	inline := map[string]bool{}
	for _, o := range r.Overlays {
		for _, fe := range o.Files {
			inline[f.Where(fe.Pos)] = true
		}
	}
	if opts.json {
		doc := explainJSON{Schema: "olimage.explain/v1", Role: role, Entry: manifest.FromEntry(en),
			Supplied: overlayRef{en.Overlay(), declared[en.Overlay()]}, Shadowed: []overlayRef{},
			OwnerFrom: origin(en.OwnerRule(), inline), ModeFrom: origin(en.ModeRule(), inline), History: res.HistoryOf(p)}
		for _, s := range en.Shadowed() {
			doc.Shadowed = append(doc.Shadowed, overlayRef{s, declared[s]})
		}
		return writeJSON(out, doc)
	}
	fmt.Fprintf(out, "path:      %s\n", pathWithTarget(en))
	fmt.Fprintf(out, "type:      %s\n", en.Type)
	if en.Implicit {
		fmt.Fprintf(out, "supplied:  implicitly, as a parent directory of overlay %q (%s)\n", en.Overlay(), declared[en.Overlay()])
	} else {
		fmt.Fprintf(out, "supplied:  overlay %q (%s)\n", en.Overlay(), declared[en.Overlay()])
	}
	if from := res.HistoryOf(p); from != "" {
		fmt.Fprintf(out, "history:   copied from the previous release's image %s\n", from)
	}
	if len(en.Shadowed()) == 0 {
		fmt.Fprintln(out, "shadowed:  none")
	}
	for i, s := range en.Shadowed() {
		label := "shadowed:"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(out, "%-10s overlay %q (%s)\n", label, s, declared[s])
	}
	fmt.Fprintf(out, "owner:     %s (%d:%d), from %s\n", owner(en), en.UID, en.GID, origin(en.OwnerRule(), inline))
	fmt.Fprintf(out, "mode:      %04o, from %s\n", en.Mode, origin(en.ModeRule(), inline))
	if !en.Digest.IsZero() {
		fmt.Fprintf(out, "content:   %d bytes, sha256 %s\n", en.Size, en.Digest)
	}
	return nil
}

func origin(rule string, inline map[string]bool) string {
	switch {
	case rule == "":
		return "the source or the fleet defaults"
	case inline[rule]:
		return "the inline entry at " + rule
	}
	return "rule at " + rule
}
