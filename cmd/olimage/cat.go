package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/tree"
)

func timeUTC(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

type catOptions struct{ follow bool }

func newCatCmd(e *env) *cobra.Command {
	var opts catOptions
	cmd := &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Print a file of an image",
		Long: `Write the content of the regular file at PATH in IMAGE to stdout, without
mounting the image. Holes read as zeros. PATH may be a pattern (*, ?, [...]
within one path segment; quote it from the shell) that matches exactly one
file. A symlink is followed with -L, inside the image: an absolute target
starts at the volume root, as debugfs reads it. IMAGE - reads the image
from stdin.`,
		Example: `  olimage cat out/ol-web.img 'opt/openlibrary/deploys/olsystem/*/etc/nginx/nginx.conf'
  olimage cat -L out/ol-web.img etc/nginx/nginx.conf
  olimage cat out/ol-web.img .olimage/manifest.json | jq .role`,
		Args: exactArgs(2, "IMAGE PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCat(e, opts, args[0], args[1], e.stdout)
		},
	}
	cmd.Flags().BoolVarP(&opts.follow, "dereference", "L", false, "follow symlinks inside the image")
	return cmd
}

func runCat(e *env, opts catOptions, img, p string, out io.Writer) error {
	src, err := operand.OpenImage(e.ctx, img, operand.NoTree)
	if err != nil {
		return err
	}
	defer src.Close()
	if hasGlob(p) {
		m, err := src.FS().Glob(p)
		if err != nil {
			return fmt.Errorf("%s: %w", img, err)
		}
		switch len(m) {
		case 0:
			return hintError{fmt.Errorf("%s: %s matches nothing", img, p), "list the image with olimage ls -R " + img}
		case 1:
			p = m[0]
		default:
			return hintError{fmt.Errorf("%s: %s matches %d paths: %s", img, p, len(m), strings.Join(m, ", ")), "name one of them"}
		}
	}
	p = cleanVolumePath(p)
	if opts.follow {
		if p, err = src.FS().Resolve(p); err != nil {
			return fmt.Errorf("%s: %w", img, err)
		}
	}
	st, err := src.FS().Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	switch st.Type {
	case tree.File, tree.Hardlink:
	case tree.Symlink:
		return hintError{fmt.Errorf("%s: %s is a symlink to %s", img, p, st.Target), "follow it inside the image with olimage cat -L"}
	default:
		return hintError{fmt.Errorf("%s: %s is a %s", img, p, st.Type), "list it with olimage ls"}
	}
	rc, err := src.FS().Open(p)
	if err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	defer rc.Close()
	_, err = io.CopyBuffer(out, tree.ContextReader(e.ctx, rc), make([]byte, 1<<20))
	return err
}

// hasGlob reports whether p holds a pattern character of path.Match.
func hasGlob(p string) bool { return strings.ContainsAny(p, "*?[") }
