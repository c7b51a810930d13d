package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/roles"
)

type buildOptions struct {
	all      bool
	jobs     int
	memory   string
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

With -o FILE one role is written there, in the format its name gives:
.img raw, .img.zst zstd, .gpt.img a GPT disk whose one Linux file-system
partition (named for the role's label, at 1 MiB) holds the volume, .qcow2
a qcow2 image for any hypervisor (zero clusters left out). The sidecar of a
disk or qcow2 image describes the volume inside it, so its size, sha256 and
dm-verity root hash are those of the raw image. With
-o - the image goes to stdout (raw, or zstd with --compress zstd) and no
sidecar is written. One summary line per image goes to stdout as soon as
that image is written, or with --json one document at the end that lists
the images built and the roles that failed, with their errors.

With several roles, -j N builds up to N at once, and sources the roles
share are read, hashed and scanned once. --memory caps the memory the
roles built at once take together, by each role's estimate (24 MiB plus
2 KiB per entry); by default it is the memory the machine has available.
It is also the Go runtime's soft memory limit (unless $GOMEMLIMIT sets
one): near it the build collects garbage sooner. Between collections the
heap may grow by half of what is live (GOGC=50, unless $GOGC is set),
not double: a build of a million one-byte files peaks near 550 MB.`,
		Example: `  olimage build -f examples/openlibrary ol-web -o out/
  olimage build -f examples/openlibrary --all -j 2 -o out/ --json
  olimage build -f examples/openlibrary --all -j 4 --memory 2GiB -o out/
  olimage build -f examples/openlibrary ol-web --verity -o out/
  olimage build -f examples/openlibrary ol-web -o out/ol-web.gpt.img
  olimage build -f examples/openlibrary ol-web -o out/ol-web.qcow2
  olimage build -f examples/openlibrary ol-db -o - --compress zstd | ssh host 'zstd -d > /dev/vdb'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(e, opts, args)
		},
	}
	cmd.Flags().BoolVar(&opts.all, "all", false, "build every role that is not abstract")
	cmd.Flags().IntVarP(&opts.jobs, "jobs", "j", 1, "roles to build at once")
	cmd.Flags().StringVar(&opts.memory, "memory", "auto", "memory the roles built at once may take together, by their estimates (such as 4GiB); auto is the machine's available memory")
	cmd.Flags().StringVarP(&opts.output, "output", "o", ".", "output directory, image file (.img, .img.zst, .gpt.img, .qcow2), or - for stdout")
	cmd.Flags().StringVar(&opts.compress, "compress", string(image.Raw), "raw or zstd (for a directory or -; a .img.zst name implies zstd)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.build/v1): images built and roles that failed")
	addProgressFlag(cmd, &opts.progress)
	cmd.Flags().BoolVar(&opts.verity, "verity", false, "append the dm-verity hash tree after the file system (as a role's image: {verity: true})")
	cmd.Flags().BoolVar(&opts.sha256, "sha256", false, "also compute the raw image's sha256 (hashes the whole declared size)")
	return cmd
}

func runBuild(e *env, opts buildOptions, names []string) error {
	switch {
	case opts.all && len(names) > 0:
		return usageError{errors.New("build: name roles or give --all, not both")}
	case !opts.all && len(names) == 0:
		return usageError{errors.New("build: name the roles to build, or give --all")}
	case opts.jobs < 1:
		return usageError{fmt.Errorf("build: -j %d: want 1 or more", opts.jobs)}
	case image.Format(opts.compress) != image.Raw && image.Format(opts.compress) != image.Zstd:
		return hintError{usageError{fmt.Errorf("build: --compress %s: want raw or zstd", opts.compress)}, "--compress zstd for a compressed image, or leave it out for a raw one"}
	}
	memory, err := memoryBudget(opts.memory)
	if err != nil {
		return err
	}
	defer tuneGC(memory)()
	f, err := e.loadFleet()
	if err != nil {
		return err
	}
	if opts.all {
		// Roles whose files have errors are listed too, to fail each
		// on its own, not to vanish from the run.
		names = f.RoleNames(false)
		for name := range f.Broken {
			names = append(names, name)
		}
		sort.Strings(names)
	}
	if opts.output == "-" && isTerminal(e.stdout) {
		return usageError{errors.New("build: -o - writes the image to stdout, which is a terminal; redirect it to a file or a pipe")}
	}
	if err := checkOutput(opts.output); err != nil {
		return err
	}
	if len(f.Problems) > 0 {
		return errors.Join(f.Problems...) // olimage.yaml's errors concern every role
	}
	for _, name := range names {
		if opts.all {
			break // each is built or fails on its own
		}
		r, err := roleOf(f, name)
		if err != nil {
			return err
		}
		if r.Abstract {
			return abstractError(f, name)
		}
	}
	bar := newProgress(e.stderr, opts.progress && !opts.json && !e.quiet)
	out := e.stdout
	if opts.output == "-" {
		out = e.stderr // stdout carries the image
	}
	done := func(o builder.Outcome) {
		bar.done(o.Role)
		if !opts.json && o.Result != nil {
			printResult(out, o.Result) // as soon as each role is built
		}
	}
	outcomes, err := builder.BuildAll(e.ctx, f, names, builder.AllOptions{
		Options: builder.Options{
			Output: opts.output, Compress: image.Format(opts.compress), Stdout: e.stdout,
			Version: olimageVersion(), Verity: opts.verity, SHA256: opts.sha256, TmpDir: e.tmpdir,
		},
		Jobs: opts.jobs, Memory: memory, Started: bar.update, Done: done,
	})
	var ue *builder.UsageError
	if errors.As(err, &ue) {
		return usageError{fmt.Errorf("build: %w", err)}
	}
	if err != nil {
		return err
	}
	var errs []error
	doc := buildJSON{Schema: "olimage.build/v1", Images: []*builder.Result{}, Failed: []failedJSON{}, Memory: memory}
	for _, o := range outcomes {
		if o.Result != nil {
			doc.Images = append(doc.Images, o.Result)
		}
		if o.Err != nil {
			errs = append(errs, o.Err)
			doc.Failed = append(doc.Failed, failedJSON{Role: o.Role, Error: o.Err.Error()})
		}
	}
	if opts.json {
		doc.PeakRSS = peakRSS()
		if err := writeJSON(out, doc); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// buildJSON is build --json's document.
type buildJSON struct {
	Schema string            `json:"schema"`
	Images []*builder.Result `json:"images"`
	Failed []failedJSON      `json:"failed"`
	// PeakRSS is the process's peak resident set in bytes, from
	// getrusage: what a run of this size needs of the machine.
	PeakRSS int64 `json:"peak_rss"`
	// Memory is the budget the roles built at once shared, in bytes (0:
	// none), each by its image's memory_estimate.
	Memory int64 `json:"memory"`
}

// memoryBudget parses --memory: a size, or auto for the memory the
// machine has available now (none where that is not known).
func memoryBudget(s string) (int64, error) {
	if s == "auto" {
		return availableMemory(), nil
	}
	v, err := roles.ParseSize(s)
	if err != nil || v <= 0 {
		return 0, usageError{fmt.Errorf("build: --memory %s: want a size such as 4GiB, or auto", s)}
	}
	return v, nil
}

// buildGCPercent is the heap growth between collections a build allows
// (GOGC), half the runtime's default of 100. Most of a build's heap is its
// plan, live until the image is written, and the default let the heap
// grow to twice that: the million tree peaked at 660 MB from a directory
// and about 580 from a .tar.zst, against 550 and 520 at 50, for about 8%
// more CPU from the .tar.zst and none measurable from the directory.
const buildGCPercent = 50

// tuneGC sets how a build collects garbage, and returns what restores the
// settings before: the heap may grow by buildGCPercent between collections
// (unless $GOGC says otherwise), and the budget is the runtime's soft
// memory limit (unless $GOMEMLIMIT sets one), near which it collects
// sooner still, whatever the growth allowed.
func tuneGC(budget int64) (restore func()) {
	percent, limit := -2, int64(-1) // -2: not set, -1: read only
	if os.Getenv("GOGC") == "" {
		percent = debug.SetGCPercent(buildGCPercent)
	}
	if budget > 0 && os.Getenv("GOMEMLIMIT") == "" {
		limit = debug.SetMemoryLimit(budget)
	}
	return func() {
		if percent != -2 {
			debug.SetGCPercent(percent)
		}
		debug.SetMemoryLimit(limit)
	}
}

// availableMemory is MemAvailable of /proc/meminfo in bytes: what the
// kernel can give without swapping. 0 where there is no such file.
func availableMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// peakRSS is the process's peak resident set in bytes so far, or 0.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) // bytes on macOS
	}
	return int64(ru.Maxrss) * 1024 // kilobytes on Linux
}

type failedJSON struct {
	Role  string `json:"role"`
	Error string `json:"error"`
}

// abstractError refuses to build an abstract role and names the roles
// that can be built from it.
func abstractError(f *roles.Fleet, name string) error {
	var kids []string
	for _, n := range f.RoleNames(false) {
		for r := f.Roles[n]; r != nil && r.Extends != ""; r = f.Roles[r.Extends] {
			if r.Extends == name {
				kids = append(kids, n)
				break
			}
		}
	}
	err := usageError{fmt.Errorf("build: role %s is abstract: roles extend it, it is not built", name)}
	if len(kids) == 0 {
		return hintError{err, "declare a role with 'extends: " + name + "' and build that"}
	}
	return hintError{err, "build a role that extends it: " + strings.Join(kids, ", ")}
}

// checkOutput refuses -o names that would surprise, with what to write
// instead: a file name with another extension would otherwise become a
// directory, and an image file needs its directory.
func checkOutput(out string) error {
	if out == "-" {
		return nil
	}
	fi, err := os.Stat(out)
	switch {
	case err == nil && fi.IsDir(), strings.HasSuffix(out, "/"):
		return nil
	case builder.IsImageFile(out):
		dir := filepath.Dir(out)
		if di, err := os.Stat(dir); err != nil || !di.IsDir() {
			return hintError{usageError{fmt.Errorf("build: -o %s: directory %s does not exist", out, dir)}, "create it first (mkdir -p " + dir + "), or give an existing directory"}
		}
		return nil
	case err == nil:
		return hintError{usageError{fmt.Errorf("build: -o %s: exists and is not a directory, and not a file name ending in .img, .img.zst, .gpt.img or .qcow2", out)}, "give -o a directory, or a file name with one of those endings"}
	case filepath.Ext(out) != "":
		return hintError{usageError{fmt.Errorf("build: -o %s: an image file name ends in .img, .img.zst, .gpt.img or .qcow2", out)}, "for a directory of that name, write -o " + out + "/"}
	}
	return nil
}

// printResult prints one image's summary line, as soon as it is built.
func printResult(w io.Writer, r *builder.Result) {
	fmt.Fprintf(w, "%s  %s  %s  content %s  %d entries  inodes %d/%d  root %s  %.1fs\n",
		r.Role, r.Image, mib(r.Size), mib(r.Content), r.Entries, r.UsedInodes, r.Inodes, short(r.Verity.RootHash), r.Seconds)
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

// isTerminal reports whether w is a terminal; /dev/null, also a character
// device, is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
