package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/overlays"
	"github.com/internetarchive/olimage/roles"
)

// Exit statuses, decided here and nowhere else.
const (
	exitOK          = 0
	exitFindings    = 1 // differs, or verification failed
	exitError       = 2 // usage or input error
	exitInterrupted = 130
)

// errFindings reports that a command ran fine and found differences or
// problems it has already printed.
var errFindings = errors.New("findings")

// usageError is a mistake in the command line itself.
type usageError struct{ error }

// hintError carries a next step to print after the error.
type hintError struct {
	error
	hint string
}

func (e hintError) Unwrap() error { return e.error }

// env is what a command runs with; tests build their own.
type env struct {
	ctx     context.Context
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	fleet   string
	quiet   bool   // -q: no progress
	verbose bool   // -v: notes on stderr of what is read and written
	tmpdir  string // --tmpdir: where compressed archives are spooled
	loaded  *loaded
}

// loaded is the fleet a command loaded: once, however many roles it names.
type loaded struct {
	once  sync.Once
	fleet *roles.Fleet
	err   error
}

// withContext returns a copy of e that runs with ctx.
func (e *env) withContext(ctx context.Context) *env {
	c := *e
	c.ctx = ctx
	return &c
}

// loadFleet loads the fleet named by --fleet, the first time a command
// asks for it. Its error says there is no fleet; the fleet's problems are
// in it (roles.Load).
func (e *env) loadFleet() (*roles.Fleet, error) {
	load := func() (*roles.Fleet, error) {
		f, err := roles.LoadContext(e.ctx, e.fleet)
		if err != nil {
			return nil, err
		}
		trace.Notef(e.ctx, "fleet %s: loaded %s and %d roles from %s", f.Name, filepath.Join(f.Dir, "olimage.yaml"), len(f.Roles), filepath.Join(f.Dir, "roles"))
		return f, nil
	}
	if e.loaded == nil {
		return load()
	}
	e.loaded.once.Do(func() { e.loaded.fleet, e.loaded.err = load() })
	return e.loaded.fleet, e.loaded.err
}

// notes prints -v's lines on stderr, each once: the fleet, loaded for
// each role named, is the same fleet.
type notes struct {
	mu   sync.Mutex
	w    io.Writer
	seen map[string]bool
}

func (n *notes) note(line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.seen[line] {
		n.seen[line] = true
		fmt.Fprintf(n.w, "olimage: note: %s\n", line)
	}
}

// startNotes checks -q and -v and, with -v, makes what runs under e.ctx
// report to stderr.
func (e *env) startNotes() error {
	if e.quiet && e.verbose {
		return hintError{usageError{errors.New("-q and -v ask for less and more output at once")}, "give one of them"}
	}
	if e.verbose {
		e.ctx = trace.WithNotes(e.ctx, (&notes{w: e.stderr, seen: map[string]bool{}}).note)
	}
	return nil
}

// role loads the fleet and returns one of its roles, which must be free of
// errors, as the fleet as a whole must, though other roles may have some.
func (e *env) role(name string) (*roles.Fleet, *roles.Role, error) {
	f, err := e.loadFleet()
	if err != nil {
		return nil, nil, err
	}
	r, err := roleOf(f, name)
	if err != nil {
		return nil, nil, err
	}
	return f, r, nil
}

// roleOf is f.Role, with a hint for a role the fleet does not have.
func roleOf(f *roles.Fleet, name string) (*roles.Role, error) {
	r, err := f.Role(name)
	if errors.Is(err, roles.ErrNoRole) {
		if near := roles.Closest(name, f.RoleNames(true)); near != "" {
			return nil, hintError{err, fmt.Sprintf("did you mean %s?", near)}
		}
		return nil, hintError{err, "list the fleet's roles with olimage roles"}
	}
	return r, err
}

// merge loads the fleet and merges one role; the caller closes the result.
func (e *env) merge(name string) (*roles.Fleet, *roles.Role, *overlays.Result, error) {
	f, r, err := e.role(name)
	if err != nil {
		return nil, nil, nil, err
	}
	res, err := overlays.MergeWith(e.ctx, f, r, overlays.Options{TmpDir: e.tmpdir, History: manifest.ReadHistory})
	if err != nil {
		return nil, nil, nil, err
	}
	return f, r, res, nil
}

// Main runs olimage with args and returns its exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	cmd := root
	if c, _, ferr := root.Find(args); ferr == nil {
		cmd = c
	}
	return report(ctx, err, stderr, cmd)
}

// buffered runs fn with a buffered writer on out and flushes it, for
// commands that print a line per entry of a tree: unbuffered, a listing of
// 100,000 entries is a million write calls.
func buffered(out io.Writer, fn func(io.Writer) error) error {
	bw := bufio.NewWriterSize(out, 64<<10)
	err := fn(bw)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// writeJSON prints a command's --json document, indented, with a final
// newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func report(ctx context.Context, err error, stderr io.Writer, cmd *cobra.Command) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errFindings) {
		return exitFindings
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "olimage: interrupted")
		return exitInterrupted
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(stderr, "olimage: error: %s\n", line)
	}
	fmt.Fprintf(stderr, "olimage: hint: %s\n", hintFor(cmd, err))
	return exitError
}

func newRoot(e *env) *cobra.Command {
	e.loaded = &loaded{}
	root := &cobra.Command{
		Use:   "olimage",
		Short: "Build, read and compare the /1 data-volume images of a VM fleet",
		Long: `olimage merges each role's overlays (directories, tar archives, inline
files and deploys, declared in a fleet's YAML) into the /opt and /etc tree of
the role's data volume, and shows, builds, reads and compares it.

Results go to stdout; progress, errors, hints and, with -v, notes of what
was read and written (lines starting "olimage: note:") go to stderr.

` + exitStatusHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		// Runnable, so that cobra checks Args and an unknown command is a
		// usage error rather than help and success.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetIn(e.stdin)
	def := os.Getenv("OLIMAGE_FLEET")
	if def == "" {
		def = "."
	}
	root.PersistentFlags().StringVarP(&e.fleet, "fleet", "f", def, "fleet directory (holding olimage.yaml); $OLIMAGE_FLEET")
	root.PersistentFlags().BoolVarP(&e.quiet, "quiet", "q", false, "print no progress, only results and errors")
	root.PersistentFlags().BoolVarP(&e.verbose, "verbose", "v", false, "also say on stderr what is read and written: fleet, overlay sources, image formats, sidecars, outputs")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return e.startNotes() }
	root.PersistentFlags().StringVar(&e.tmpdir, "tmpdir", "", "directory for spooling compressed archives' members (default $TMPDIR, else /tmp)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRolesCmd(e), newValidateCmd(e), newPlanCmd(e), newExplainCmd(e), newBuildCmd(e),
		newInspectCmd(e), newLsCmd(e), newCatCmd(e), newExtractCmd(e), newVerifyCmd(e), newSignCmd(e), newDiffCmd(e),
		newPushCmd(e), newPullCmd(e),
		newActivateCmd(e), newDeactivateCmd(e), newRecoverCmd(e), newStatusCmd(e), newSysusersCmd(e), newFstabCmd(e), newVeritytabCmd(e), newMountUnitCmd(e), newActivateUnitCmd(e))
	root.AddCommand(newSwitchCmd(e))
	root.AddCommand(newSbomCmd(e))
	root.AddCommand(newVersionCmd(e))
	root.AddCommand(newManCmd(e, root))
	setCompletions(e, root)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// Runnable, so that an unknown shell is a usage error, not help.
			c.Args = noArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
			c.Example = `  olimage completion bash > /etc/bash_completion.d/olimage
  olimage completion zsh > "${fpath[1]}/_olimage"
  olimage completion fish > ~/.config/fish/completions/olimage.fish`
		}
	}
	root.Version = olimageVersion()
	root.SetVersionTemplate("{{.Name}} " + versionText()[len("olimage "):])
	root.Example = `  olimage -f examples/openlibrary validate
  olimage -f examples/openlibrary plan ol-web
  olimage -f examples/openlibrary build --all -o out/`
	for _, c := range root.Commands() {
		if !strings.Contains(c.Long, "EXIT STATUS") {
			c.Long += "\n\n" + exitStatusHelp
		}
	}
	return root
}

const exitStatusHelp = `EXIT STATUS
  0    success
  1    differences or verification findings (diff, verify, status)
  2    usage or input error
  130  interrupted`

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		err := usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
		var names []string
		for _, c := range cmd.Commands() {
			if !c.Hidden && c.Name() != "help" {
				names = append(names, c.Name())
			}
		}
		if near := roles.Closest(args[0], names); near != "" {
			return hintError{err, fmt.Sprintf("did you mean '%s %s'?", cmd.CommandPath(), near)}
		}
		return hintError{err, "the commands are " + strings.Join(names, ", ")}
	}
	return nil
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return rangeArgs(n, n, names)
}

// rangeArgs wants least to most arguments; names says which, as in
// "IMAGE [PATH]".
func rangeArgs(least, most int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < least || len(args) > most {
			return usageError{fmt.Errorf("%s: want %s, got %d argument(s)", cmd.CommandPath(), names, len(args))}
		}
		return nil
	}
}
