package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
)

type recoverOptions struct {
	root   string
	volume string
	dryRun bool
	json   bool
}

func newRecoverCmd(e *env) *cobra.Command {
	var opts recoverOptions
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Put back the originals from the backups when the journal is lost or corrupt",
		Long: `When ROOT/var/lib/olimage/journal.json is lost or cannot be read, activate
and deactivate refuse to run. recover puts the root back without it: every
original kept under ROOT/var/lib/olimage/backup/IMAGE/PATH goes back to
/PATH, replacing the symlink into the volume (--volume, default /1) that
activate made there; then the other symlinks into the volume, at the top of
/opt and anywhere under /etc, and those under /etc to the VM's copies of
secrets (/etc/olimage/secrets/...), are removed. Nothing else is touched: the
directories activate made stay, and a path where something else is now
found refuses the whole recovery before anything changes. The unreadable
journal is kept as journal.json.broken; the next activate starts afresh.

With the journal intact, recover refuses: deactivate undoes exactly what it
records.

Output as for deactivate: one line per step (unlink, restore); --dry-run
prints them and changes nothing; --json prints the document
olimage.activate/v1 (docs/json.md), with "image": null.`,
		Example: `  olimage recover --dry-run     # what would go back
  olimage recover
  olimage recover --root /mnt/vm --volume /1 --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRecover(e, opts, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.root, "root", "/", "the root file system to restore")
	cmd.Flags().StringVar(&opts.volume, "volume", manifest.DefaultMount, "where the volume was mounted, as seen from --root: links into it are removed")
	cmd.Flags().BoolVarP(&opts.dryRun, "dry-run", "n", false, "print the steps, change nothing")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.activate/v1)")
	return cmd
}

func runRecover(e *env, opts recoverOptions, out io.Writer) error {
	if err := needLinux("recover"); err != nil {
		return err
	}
	rep, err := activate.Recover(e.ctx, activate.Options{Root: opts.root, Volume: opts.volume, DryRun: opts.dryRun})
	if err != nil {
		return activationError(err)
	}
	if opts.json {
		return writeJSON(out, rep)
	}
	dry := ""
	if rep.DryRun {
		dry = " (dry run)"
	}
	fmt.Fprintf(out, "recover%s %s from the backups in %s\n", dry, rep.Root, "/"+activate.BackupDir)
	return printChanges(out, rep.Changes)
}
