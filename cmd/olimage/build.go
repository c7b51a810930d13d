package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/manifest"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); it is
// recorded in every manifest, so it must not vary from build to build.
var version = ""

func olimageVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

type buildOptions struct {
	all      bool
	jobs     int
	output   string
	compress string
	json     bool
	progress bool
	verity   bool
	sha256   bool
}

func newBuildCmd(e *env) *cobra.Command {
	var opts buildOptions
	cmd := &cobra.Command{
		Use:   "build ROLE... | --all",
		Short: "Build the ext4 image of one or more roles",
		Long: `Merge each role's overlays and write its /1 data volume: an ext4 file
system with opt/, etc/ and .olimage/manifest.json at its root, plus a
sidecar manifest (IMAGE.manifest.json) that identifies the image by the
dm-verity root hash of its file system, with the tree's salt and
parameters. The root hash costs what the content costs; --sha256 adds the
raw image's sha256, which costs hashing every byte of the declared size.

With --verity the dm-verity hash tree (a veritysetup superblock, then the
tree) is appended to the image at the first byte after the file system,
the hash offset the sidecar records; the file system is unchanged, so the
image still mounts as plain ext4. Without it no tree is written: it takes
1/128 of the declared size, empty space included (512 MiB for a 64 GiB
volume), but the root hash is the same either way.

Images are named ROLE-VERSION-DIGEST.img (.img.zst with --compress zstd):
the fleet's version (or the epoch's date) and the first 12 hex digits of the
tree digest. The same fleet always gives the same bytes: the UUID and
directory hash seed derive from the role and its content, every time stamp
is the fleet epoch. Raw images are sparse. Output is atomic: a failed or
interrupted build leaves nothing at the output path.

With -o FILE (ending in .img or .img.zst) one role is written there; with
-o - the image goes to stdout (raw, or zstd with --compress zstd) and no
sidecar is written. One summary line per image goes to stdout, or a JSON
array with --json.`,
		Example: `  olimage build -f examples/openlibrary ol-web -o out/
  olimage build -f examples/openlibrary --all -j 2 -o out/ --json
  olimage build -f examples/openlibrary ol-web --verity -o out/
  olimage build -f examples/openlibrary ol-db -o - --compress zstd | ssh host 'zstd -d > /dev/vdb'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(e, opts, args)
		},
	}
	cmd.Flags().BoolVar(&opts.all, "all", false, "build every role that is not abstract")
	cmd.Flags().IntVarP(&opts.jobs, "jobs", "j", 1, "roles to build at once")
	cmd.Flags().StringVarP(&opts.output, "output", "o", ".", "output directory, image file (.img, .img.zst), or - for stdout")
	cmd.Flags().StringVar(&opts.compress, "compress", builder.Raw, "raw or zstd (for a directory or -; a .img.zst name implies zstd)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print a JSON array of results")
	cmd.Flags().BoolVar(&opts.progress, "progress", true, "show progress when stderr is a terminal")
	cmd.Flags().BoolVar(&opts.verity, "verity", false, "append the dm-verity hash tree after the file system")
	cmd.Flags().BoolVar(&opts.sha256, "sha256", false, "also compute the raw image's sha256 (hashes the whole declared size)")
	return cmd
}

func runBuild(e *env, opts buildOptions, names []string) error {
	switch {
	case opts.all && len(names) > 0:
		return usageError{errors.New("build: name roles or give --all, not both")}
	case !opts.all && len(names) == 0:
		return usageError{errors.New("build: name the roles to build, or give --all")}
	}
	seen := map[string]bool{}
	for _, name := range names {
		// Two builds of one role would race to the same output file.
		if seen[name] {
			return usageError{fmt.Errorf("build: role %s named twice", name)}
		}
		seen[name] = true
	}
	if opts.jobs < 1 {
		return usageError{fmt.Errorf("build: -j %d: want 1 or more", opts.jobs)}
	}
	f, ferr := e.loadFleet()
	if f == nil {
		return ferr
	}
	if opts.all {
		names = f.RoleNames(false)
	}
	if opts.output == "-" && isTerminal(e.stdout) {
		return usageError{errors.New("build: -o - writes the image to stdout, which is a terminal; redirect it to a file or a pipe")}
	}
	single := opts.output == "-" || isImageName(opts.output)
	if single && len(names) != 1 {
		return usageError{fmt.Errorf("build: -o %s takes one role, got %d", opts.output, len(names))}
	}
	if !single && opts.output != "" {
		if err := os.MkdirAll(opts.output, 0o755); err != nil {
			return fmt.Errorf("%w: %v", builder.ErrOutput, err)
		}
	}
	for _, name := range names {
		if _, _, err := e.role(name); err != nil {
			return err
		}
	}
	bar := newProgress(e.stderr, opts.progress && !opts.json && isTerminal(e.stderr))
	results := make([]*builder.Result, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, opts.jobs)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := f.Roles[name]
			results[i], errs[i] = builder.Build(e.ctx, f, r, builder.Options{
				Output: opts.output, Compress: opts.compress, Stdout: e.stdout,
				Version: olimageVersion(), Progress: bar.update(name), Verity: opts.verity, SHA256: opts.sha256,
			})
			bar.done(name)
		}()
	}
	wg.Wait()
	var ok []*builder.Result
	for _, r := range results {
		if r != nil {
			ok = append(ok, r)
		}
	}
	out := e.stdout
	if opts.output == "-" {
		out = e.stderr // stdout carries the image
	}
	if opts.json {
		if ok == nil {
			ok = []*builder.Result{}
		}
		if err := manifest.WriteJSON(out, ok); err != nil {
			return err
		}
	} else {
		printResults(out, ok)
	}
	return errors.Join(errs...)
}

func isImageName(p string) bool {
	fi, err := os.Stat(p)
	if err == nil && fi.IsDir() {
		return false
	}
	return len(p) > 4 && (p[len(p)-4:] == ".img" || len(p) > 8 && p[len(p)-8:] == ".img.zst")
}

func printResults(w io.Writer, results []*builder.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\tcontent %s\t%d entries\tinodes %d/%d\troot %s\t%.1fs\n",
			r.Role, r.Image, mib(r.Size), mib(r.Content), r.Entries, r.UsedInodes, r.Inodes, short(r.Verity.RootHash), r.Seconds)
	}
	tw.Flush()
}

func mib(n int64) string {
	if n < 1<<10 {
		return fmt.Sprintf("%d bytes", n)
	}
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
