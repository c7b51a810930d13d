package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/operand"
)

type sysusersOptions struct{}

func newSysusersCmd(e *env) *cobra.Command {
	var opts sysusersOptions
	cmd := &cobra.Command{
		Use:   "sysusers ROLE|IMAGE",
		Short: "Print a sysusers.d file creating the accounts an image's files use, with the fleet's ids",
		Long: `Print a systemd sysusers.d(5) file that creates the users and groups the
files of ROLE (merged from the fleet, -f) or of IMAGE (an image file or an
attached device such as /dev/vdb, from the manifest it carries) belong to,
with the fleet's ids: a 'g NAME GID' line per group, then a 'u NAME UID'
line per user ('u NAME UID:GID' when a group of the same name exists),
sorted by name. root is left out: every system has it.

Install it and run systemd-sysusers before 'olimage activate', which
compares the ids the image's files use with /etc/passwd and /etc/group and
refuses a mismatch. An account that already exists is left as it is:
systemd-sysusers does not change ids.`,
		Example: `  olimage sysusers /dev/vdb > /etc/sysusers.d/olimage-ol-web.conf && systemd-sysusers
  olimage -f examples/openlibrary sysusers ol-db`,
		Args: exactArgs(1, "ROLE or IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSysusers(e, opts, args[0], e.stdout)
		},
	}
	return cmd
}

func runSysusers(e *env, _ sysusersOptions, name string, out io.Writer) error {
	var (
		acc   *activate.Accounts
		title string
	)
	if !operand.IsImage(name) && operand.LooksLikeFile(name) {
		if _, err := os.Stat(name); err != nil {
			return err // meant as an image: say why it cannot be read
		}
	}
	if operand.IsImage(name) {
		src, err := operand.OpenImage(e.ctx, name, operand.NoTree)
		if err != nil {
			return err
		}
		defer src.Close()
		m, t, err := src.EmbeddedManifest()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if acc, err = activate.TreeAccounts(t); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		title = fmt.Sprintf("Accounts the files of image %s (role %s, fleet %s %s) use, with the fleet's ids.", m.UUID, m.Role, m.Fleet, m.FleetVersion)
	} else {
		f, r, res, err := e.merge(name)
		if err != nil {
			return err
		}
		defer res.Close()
		if acc, err = activate.TreeAccounts(res.Tree); err != nil {
			return fmt.Errorf("role %s: %w", name, err)
		}
		title = fmt.Sprintf("Accounts the files of role %s (fleet %s %s) use, with the fleet's ids.", r.Name, f.Name, f.Version)
	}
	return activate.WriteSysusers(out, title, acc)
}
