package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/extract"
	"github.com/internetarchive/olimage/operand"
)

type extractOptions struct {
	follow   bool
	progress bool
}

func newExtractCmd(e *env) *cobra.Command {
	var opts extractOptions
	cmd := &cobra.Command{
		Use:   "extract IMAGE DIR [PATH]",
		Short: "Copy an image's files into a directory, without root",
		Long: `Write the files of IMAGE (or only PATH and what is below it) into DIR,
which must be new or empty: content, directories, symlinks, hard links,
modes, mtimes and user.* xattrs. Owners and other xattrs are set only when
run as root; otherwise the files belong to whoever runs it. Nothing is
written outside DIR. With -L, symlinks in PATH (the last one too) are
followed inside the image, an absolute target from the volume root, and
what they name is extracted; symlinks below it are copied as symlinks.
IMAGE - reads the image from stdin.`,
		Example: `  olimage extract out/ol-web.img /tmp/ol-web
  olimage extract out/ol-web.img /tmp/etc etc
  olimage extract -L out/ol-web.img /tmp/olsystem opt/openlibrary/olsystem`,
		Args: rangeArgs(2, 3, "IMAGE DIR [PATH]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := ""
			if len(args) == 3 {
				p = args[2]
			}
			return runExtract(e, opts, args[0], args[1], p, e.stdout)
		},
	}
	cmd.Flags().BoolVarP(&opts.follow, "dereference", "L", false, "follow symlinks in PATH inside the image")
	addProgressFlag(cmd, &opts.progress)
	return cmd
}

func runExtract(e *env, opts extractOptions, img, dir, p string, out io.Writer) error {
	ctx, stop := newProgress(e.stderr, opts.progress && !e.quiet).reads(e.ctx)
	defer stop()
	src, err := operand.OpenImage(ctx, img, operand.Listing)
	if err != nil {
		return err
	}
	defer src.Close()
	if p != "" && cleanVolumePath(p) == "" {
		return usageError{fmt.Errorf("extract: %q names the volume root; leave PATH out to extract everything", p)}
	}
	p = cleanVolumePath(p)
	if opts.follow && p != "" {
		if p, err = src.FS().Resolve(p); err != nil {
			return fmt.Errorf("%s: %w", img, err)
		}
	}
	if p != "" && src.Tree().Get(p) == nil {
		return hintError{fmt.Errorf("%s: %s: not in the image", img, p), "list what the image holds with 'olimage ls -R " + img + "'"}
	}
	res, err := extract.Tree(ctx, src.Tree(), p, dir)
	stop()
	if err != nil {
		return hintError{fmt.Errorf("extracting %s into %s: %w", img, dir, err), "extract into a new or empty directory on a file system with room for the image's files"}
	}
	note := ""
	if !res.Owners {
		note = " (not root: owners not set)"
	}
	_, err = fmt.Fprintf(out, "%s: %s, %s into %s%s\n", img, plural(res.Entries, "entry", "entries"), mib(res.Bytes), dir, note)
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
