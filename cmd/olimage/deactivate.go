package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
)

type deactivateOptions struct {
	root   string
	dryRun bool
	json   bool
}

func newDeactivateCmd(e *env) *cobra.Command {
	var opts deactivateOptions
	cmd := &cobra.Command{
		Use:   "deactivate",
		Short: "Undo activate: remove its links and put back what they replaced",
		Long: `Undo every step the journal (ROOT/var/lib/olimage/journal.json) records,
newest first: remove the links activate made (only if they are still the
symlinks it made), move the originals back from
ROOT/var/lib/olimage/backup, and remove the directories it created if they
are empty. Then clear the journal and the backup directory. A deactivate
that is interrupted is completed by the next one.

Output as for activate: one line per step (unlink, restore, rmdir);
--dry-run prints them and changes nothing; --json prints the document
olimage.activate/v1 (docs/json.md), with "image": null.`,
		Example: `  olimage deactivate
  olimage deactivate --root /mnt/vm --dry-run`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeactivate(e, opts, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.root, "root", "/", "the root file system to restore")
	cmd.Flags().BoolVarP(&opts.dryRun, "dry-run", "n", false, "print the steps, change nothing")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.activate/v1)")
	return cmd
}

func runDeactivate(e *env, opts deactivateOptions, out io.Writer) error {
	if err := needLinux("deactivate"); err != nil {
		return err
	}
	rep, err := activate.Deactivate(e.ctx, activate.Options{Root: opts.root, DryRun: opts.dryRun})
	if err != nil {
		// What was done before the error is in the journal: status shows it.
		return activationError(err)
	}
	return printActivation(out, opts.json, rep)
}
