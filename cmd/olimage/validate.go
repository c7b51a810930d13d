package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/overlays"
)

func newValidateCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the whole fleet: every file, every role, every overlay",
		Long: `Load the fleet strictly and merge every role that is not abstract, as a
build would, reporting every error found (unknown keys, bad values, extends
cycles, missing sources, unsafe archive entries, merge conflicts), each with
its file and line or path. Prints one line per role when all is well.`,
		Example: `  olimage validate -f examples/openlibrary`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(e, e.stdout)
		},
	}
}

func runValidate(e *env, out io.Writer) error {
	f, err := e.loadFleet()
	if f == nil {
		return err
	}
	errs := []error{err}
	for _, name := range f.RoleNames(false) {
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		res, merr := overlays.Merge(f, f.Roles[name])
		if merr != nil {
			errs = append(errs, merr)
			continue
		}
		fmt.Fprintf(out, "ok  %-12s %6d entries  %d overlays\n", name, res.Tree.Len(), len(res.Inputs))
		res.Close()
	}
	return errors.Join(errs...)
}
