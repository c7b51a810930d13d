package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/source"
	"github.com/internetarchive/olimage/tree"
)

func timeUTC(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func newCatCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Print a file of an image",
		Long: `Write the content of the regular file at PATH in IMAGE to stdout, without
mounting the image. Holes read as zeros. A symlink is not followed: cat the
path it names.`,
		Example: `  olimage cat out/ol-web.img opt/openlibrary/deploys/olsystem/*/etc/nginx/nginx.conf
  olimage cat out/ol-web.img .olimage/manifest.json | jq .role`,
		Args: exactArgs(2, "IMAGE PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCat(e, args[0], args[1], e.stdout)
		},
	}
}

func runCat(e *env, img, p string, out io.Writer) error {
	src, err := source.OpenImage(e.ctx, img, source.NoTree)
	if err != nil {
		return err
	}
	defer src.Close()
	p = cleanVolumePath(p)
	st, err := src.FS.Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	switch st.Type {
	case tree.File, tree.Hardlink:
	case tree.Symlink:
		return hintError{fmt.Errorf("%s: %s is a symlink to %s", img, p, st.Target), "olimage cat does not follow symlinks; cat the target"}
	default:
		return hintError{fmt.Errorf("%s: %s is a %s", img, p, st.Type), "list it with olimage ls"}
	}
	rc, err := src.FS.Open(p)
	if err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	defer rc.Close()
	_, err = io.Copy(out, rc)
	return err
}
