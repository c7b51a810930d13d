package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/source"
	"github.com/internetarchive/olimage/verify"
)

type verifyOptions struct{ json bool }

func newVerifyCmd(e *env) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check an image's structures and every file against its manifest",
		Long: `Check IMAGE without mounting it. First its ext4 structures: superblock,
group descriptor, bitmap, inode, extent and directory checksums
(metadata_csum), and the block and inode bitmaps against what is in use.
Then every entry against the manifest the image carries: type, mode, owner,
mtime, link target, xattrs, and the sha256 of every file's content.

Prints one line per finding, naming the structure and inode or the path, and
exits 1 if there is any. IMAGE may be an attached device (/dev/vdb).`,
		Example: `  olimage verify out/ol-web-2024.01-979dab02b02f.img
  olimage verify /dev/vdb --json`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(e, opts, args[0], e.stdout)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.verify/v1)")
	return cmd
}

func runVerify(e *env, opts verifyOptions, img string, out io.Writer) error {
	src, err := source.OpenImage(e.ctx, img, source.NoTree)
	if err != nil {
		return err
	}
	defer src.Close()
	rep, err := verify.Image(e.ctx, src)
	if err != nil {
		return err
	}
	if opts.json {
		if err := manifest.WriteJSON(out, struct {
			Schema string `json:"schema"`
			*verify.Report
		}{"olimage.verify/v1", rep}); err != nil {
			return err
		}
	} else {
		for _, f := range rep.Findings {
			fmt.Fprintln(out, f)
		}
		status := "ok"
		if len(rep.Findings) > 0 {
			status = fmt.Sprintf("%d finding(s)", len(rep.Findings))
		}
		fmt.Fprintf(out, "%s: %s: %d entries and %s of content checked against the manifest\n", img, status, rep.Entries, mib(rep.Bytes))
	}
	if len(rep.Findings) > 0 {
		return errFindings
	}
	return nil
}
