package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/overlays"
)

type validateOptions struct{ json bool }

func newValidateCmd(e *env) *cobra.Command {
	var opts validateOptions
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the whole fleet: every file, every role, every overlay",
		Long: `Load the fleet strictly and merge every role that is not abstract, as a
build would, reporting every error found (unknown keys, bad values, extends
cycles, missing sources, unsafe archive entries, merge conflicts, image
sizes that are not whole 4 KiB blocks or too small for the content), each
with its file and line or path. Prints one line per role when all is well.`,
		Example: `  olimage validate -f examples/openlibrary
  olimage validate -f examples/openlibrary --json | jq '.errors[]'`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(e, opts, e.stdout)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.validate/v1), errors included")
	return cmd
}

// validateJSON is validate --json's document.
type validateJSON struct {
	Schema string             `json:"schema"`
	Fleet  string             `json:"fleet"`
	Roles  []validateRoleJSON `json:"roles"`
	Errors []string           `json:"errors"`
}

type validateRoleJSON struct {
	Role     string `json:"role"`
	Entries  int    `json:"entries"`
	Overlays int    `json:"overlays"`
	Size     int64  `json:"size"`
}

func runValidate(e *env, opts validateOptions, out io.Writer) error {
	f, err := e.loadFleet()
	if err != nil {
		return err
	}
	errs := []error{f.Err()}
	doc := validateJSON{Schema: "olimage.validate/v1", Fleet: f.Name, Roles: []validateRoleJSON{}, Errors: []string{}}
	// Roles that list one source read it once.
	shared := overlays.NewShared(e.ctx, f, e.tmpdir)
	defer shared.Close()
	for _, name := range f.RoleNames(false) {
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		c, cerr := builder.CheckWith(e.ctx, f, f.Roles[name], builder.Options{TmpDir: e.tmpdir, Shared: shared})
		if cerr != nil {
			errs = append(errs, cerr)
			continue
		}
		doc.Roles = append(doc.Roles, validateRoleJSON{Role: name, Entries: c.Entries, Overlays: c.Inputs, Size: c.Size})
		if !opts.json {
			fmt.Fprintf(out, "ok  %-12s %6d entries  %d overlays\n", name, c.Entries, c.Inputs)
		}
	}
	err = errors.Join(errs...)
	if opts.json {
		if err != nil {
			doc.Errors = strings.Split(err.Error(), "\n")
		}
		if werr := writeJSON(out, doc); werr != nil {
			return werr
		}
	}
	return err
}
