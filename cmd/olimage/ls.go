package main

import (
	"fmt"
	"io"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/tree"
)

type lsOptions struct{ recursive, json bool }

// lsJSON is ls --json's document.
type lsJSON struct {
	Schema  string           `json:"schema"`
	Image   string           `json:"image"`
	Path    string           `json:"path"`
	Entries []manifest.Entry `json:"entries"`
}

func newLsCmd(e *env) *cobra.Command {
	var opts lsOptions
	cmd := &cobra.Command{
		Use:   "ls IMAGE [PATH]",
		Short: "List a directory of an image",
		Long: `List PATH (default the volume root) of IMAGE without mounting it, one line
per entry: type and mode, owner, size, mtime (UTC) and name; symlinks show
their target. Owners are the names the image's manifest records (those of
the fleet's owners: and groups:), else numbers. -R lists the whole subtree,
with full paths. IMAGE - reads the image from stdin.`,
		Example: `  olimage ls out/ol-web.img opt/openlibrary
  olimage ls -R out/ol-web.img etc
  olimage ls --json out/ol-web.img etc/nginx | jq '.entries[].path'`,
		Args: rangeArgs(1, 2, "IMAGE [PATH]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := ""
			if len(args) == 2 {
				p = args[1]
			}
			return buffered(e.stdout, func(w io.Writer) error { return runLs(e, opts, args[0], p, w) })
		},
	}
	cmd.Flags().BoolVarP(&opts.recursive, "recursive", "R", false, "list the whole subtree")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.ls/v1); content digests are not computed")
	return cmd
}

func cleanVolumePath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

func runLs(e *env, opts lsOptions, img, p string, out io.Writer) error {
	src, err := operand.OpenImage(e.ctx, img, operand.Listing)
	if err != nil {
		return err
	}
	defer src.Close()
	p = cleanVolumePath(p)
	var list []*tree.Entry
	if p == "" {
		list, err = src.FS().ReadDir("")
	} else {
		var st *tree.Entry
		if st, err = src.FS().Stat(p); err == nil && st.Type == tree.Dir {
			list, err = src.FS().ReadDir(p)
		} else if err == nil {
			list = []*tree.Entry{st}
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	users, groups := ownerNames(src)
	named := func(en *tree.Entry) string {
		u, g := en.Owner(), en.Group()
		if u == "" {
			u = users[en.UID]
		}
		if g == "" {
			g = groups[en.GID]
		}
		en.SetNames(u, g)
		return owner(en)
	}
	doc := lsJSON{Schema: "olimage.ls/v1", Image: img, Path: p, Entries: []manifest.Entry{}}
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	var walk func(list []*tree.Entry) error
	walk = func(list []*tree.Entry) error {
		for _, en := range list {
			if err := e.ctx.Err(); err != nil { // -R of a large image
				return err
			}
			name := tree.Quote(en.Name())
			if opts.recursive {
				name = tree.Quote(en.Path())
			}
			if en.Type == tree.Symlink {
				name += " -> " + tree.Quote(en.Target)
			}
			if opts.json {
				named(en)
				doc.Entries = append(doc.Entries, manifest.FromEntry(en))
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", modeString(en), named(en), en.Size, utc(en.ModTime), name)
			}
			if opts.recursive && en.Type == tree.Dir {
				kids, err := src.FS().ReadDir(en.Path())
				if err != nil {
					return fmt.Errorf("%s: %w", img, err)
				}
				if err := walk(kids); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(list); err != nil {
		return err
	}
	if opts.json {
		return writeJSON(out, doc)
	}
	return tw.Flush()
}

// ownerNames returns the user and group names, by id, that the manifest
// inside an image records; ext4 itself keeps only numbers. Images without
// a manifest give none.
func ownerNames(src *operand.Operand) (users, groups map[uint32]string) {
	users, groups = map[uint32]string{}, map[uint32]string{}
	_, t, err := src.EmbeddedManifest()
	if err != nil {
		return users, groups
	}
	for _, en := range t.Entries {
		if u := en.Owner(); u != "" {
			users[en.UID] = u
		}
		if g := en.Group(); g != "" {
			groups[en.GID] = g
		}
	}
	// The manifest does not list itself; its directory belongs to root.
	if _, ok := users[0]; !ok {
		users[0] = "root"
	}
	if _, ok := groups[0]; !ok {
		groups[0] = "root"
	}
	return users, groups
}

// modeString renders type and mode as ls -l does.
func modeString(e *tree.Entry) string {
	t := map[tree.Type]byte{tree.File: '-', tree.Hardlink: '-', tree.Dir: 'd', tree.Symlink: 'l'}[e.Type]
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if e.Mode&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if e.Mode&bit != 0 {
			if b[pos] == 'x' || b[pos] == 't' || b[pos] == 's' {
				b[pos] = set
			} else {
				b[pos] = unset
			}
		}
	}
	special(tree.ModeSetuid, 3, 's', 'S')
	special(tree.ModeSetgid, 6, 's', 'S')
	special(tree.ModeSticky, 9, 't', 'T')
	return string(b)
}

func utc(sec int64) string {
	return timeUTC(sec).Format("2006-01-02 15:04")
}
