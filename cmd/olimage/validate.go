package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/builder"
)

func newValidateCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the whole fleet: every file, every role, every overlay",
		Long: `Load the fleet strictly and merge every role that is not abstract, as a
build would, reporting every error found (unknown keys, bad values, extends
cycles, missing sources, unsafe archive entries, merge conflicts, image
sizes that are not whole 4 KiB blocks or too small for the content), each
with its file and line or path. Prints one line per role when all is well.`,
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
		c, cerr := builder.Check(e.ctx, f, f.Roles[name])
		if cerr != nil {
			errs = append(errs, cerr)
			continue
		}
		fmt.Fprintf(out, "ok  %-12s %6d entries  %d overlays\n", name, c.Entries, c.Inputs)
	}
	return errors.Join(errs...)
}
