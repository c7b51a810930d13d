package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
)

type switchOptions struct {
	volume string
	root   string
	dryRun bool
	json   bool
}

func newSwitchCmd(e *env) *cobra.Command {
	var opts switchOptions
	cmd := &cobra.Command{
		Use:   "switch SERVICE BIN",
		Short: "Repoint a deployed service's active link to another bin the image carries",
		Long: `Repoint the active link of SERVICE on the root disk
(/opt/openlibrary/SERVICE) to the bin BIN the active image carries
(/1/opt/openlibrary/deploys/SERVICE/BIN), and rewrite the unit files that
come from it; on the running system systemd then reloads its units. Each
step is journaled, as activate's are, and 'olimage deactivate' takes it
back. 'olimage status' shows the active bin of each service and the bins
the image carries.

The choice holds while the same image stays active, also when activate
runs again at boot; activating another image (the next release, or the
previous one to roll back) links that image's own bins.

A bin or service the image does not carry, or a volume that is not the
active image, is refused and nothing changes. Output and --json as for
activate.`,
		Example: `  olimage switch olsystem 3f9c2e1a7b04      # back to the previous olsystem
  olimage switch olsystem 5d2a9c1e8f00 --dry-run`,
		Args: exactArgs(2, "SERVICE and BIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSwitch(e, opts, args[0], args[1], e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.volume, "volume", manifest.DefaultMount, "where the volume is mounted, as seen from --root")
	cmd.Flags().StringVar(&opts.root, "root", "/", "the root file system to change")
	cmd.Flags().BoolVarP(&opts.dryRun, "dry-run", "n", false, "print the steps, change nothing")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.activate/v1)")
	return cmd
}

func runSwitch(e *env, opts switchOptions, service, bin string, out io.Writer) error {
	if err := needLinux("switch"); err != nil {
		return err
	}
	rep, err := activate.Switch(e.ctx, activate.Options{Root: opts.root, Volume: opts.volume, DryRun: opts.dryRun}, service, bin)
	switch {
	case errors.Is(err, activate.ErrNoBin), errors.Is(err, activate.ErrNoDeploy):
		return hintError{err, "'olimage status' lists each service's bins"}
	case errors.Is(err, activate.ErrNotActive):
		return hintError{err, "run 'olimage activate' first"}
	case err != nil:
		return activationError(err)
	}
	return printActivation(out, opts.json, rep)
}
