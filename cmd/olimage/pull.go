package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/artifact"
)

type pullOptions struct {
	output   string
	jobs     int
	insecure bool
	json     bool
	progress bool
}

func newPullCmd(e *env) *cobra.Command {
	var opts pullOptions
	cmd := &cobra.Command{
		Use:   "pull REF -o FILE|DEVICE",
		Short: "Fetch an image from an OCI registry to a file or a disk",
		Long: `Fetch the image REF names (by tag or digest) and write it raw to FILE or
to a block DEVICE (a VM's second disk). Chunks download in parallel and are
decompressed as they arrive; zero blocks are not written (a file keeps them
as holes, a device gets them zeroed in place), so a mostly empty volume
writes little.

A file is written beside FILE and renamed into place only once the image
matches the sidecar: its dm-verity root hash (and the tree after it, if the
image carries one), and its sha256 if the sidecar has one. The sidecar is
written beside it as
FILE.manifest.json. If the network fails or the pull is interrupted, what
was written stays beside FILE and the same pull run again resumes from it;
nothing is ever left under FILE itself. A device is written in place (it
must not be mounted), then read back: if it does not match, pull fails and
says so.

Credentials and --insecure as for push.`,
		Example: `  olimage pull registry.example.org/ol/ol-web:2024.01 -o /dev/vdb
  olimage pull registry.example.org/ol/ol-web@sha256:4f2c... -o ol-web.img --json`,
		Args: exactArgs(1, "REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPull(e, opts, args[0], e.stdout)
		},
	}
	cmd.Flags().StringVarP(&opts.output, "output", "o", "", "image file or block device to write (required)")
	cmd.Flags().IntVarP(&opts.jobs, "jobs", "j", 4, "chunks to download at once")
	addInsecure(cmd, &opts.insecure)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.pull/v1)")
	addProgressFlag(cmd, &opts.progress)
	return cmd
}

func runPull(e *env, opts pullOptions, ref string, out io.Writer) error {
	switch {
	case opts.output == "":
		return usageError{fmt.Errorf("pull: -o FILE|DEVICE is required")}
	case opts.jobs < 1:
		return usageError{fmt.Errorf("pull: -j %d: want 1 or more", opts.jobs)}
	case !artifact.IsRef(ref):
		return usageError{fmt.Errorf("pull: %q is not a registry reference (HOST/REPO:TAG or HOST/REPO@sha256:...)", ref)}
	}
	bar := newProgress(e.stderr, opts.progress && !opts.json && !e.quiet)
	c := registryClient(opts.insecure)
	res, err := c.Pull(e.ctx, ref, opts.output, artifact.PullOptions{Jobs: opts.jobs, Progress: bar.update(ref)})
	bar.done(ref)
	if err != nil {
		return registryHint(err)
	}
	if opts.json {
		return writeJSON(out, struct {
			Schema string `json:"schema"`
			*artifact.PullResult
		}{"olimage.pull/v1", res})
	}
	fmt.Fprintf(out, "%s  %s  %s (%s written)  %s\n", res.Target, res.Digest, mib(res.Size), mib(res.Written), res.Image)
	return nil
}
