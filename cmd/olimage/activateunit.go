package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
)

type activateUnitOptions struct {
	volume  string
	root    string
	exec    string
	write   bool
	key     string
	sidecar string
}

func newActivateUnitCmd(e *env) *cobra.Command {
	var opts activateUnitOptions
	cmd := &cobra.Command{
		Use:   "activate-unit",
		Short: "Print or install the systemd unit that activates the volume at boot",
		Long: `Print olimage-activate.service, the systemd unit that runs 'olimage
activate' at boot: it requires the volume's mount unit (1.mount for /1,
made by systemd from the fstab line 'olimage fstab --write' writes) and
runs after it, and before multi-user.target. activate orders the units the
image ships after it, so the role's services start once their links and
unit files are in place.

With --write it installs the unit as ROOT/etc/systemd/system/` + activate.ActivateUnitName + `
and enables it (the multi-user.target.wants link 'systemctl enable' makes),
replacing an older version; on the running system (--root /, under
systemd) it then reloads systemd's units. Running it again changes nothing.
It prints the paths it changed.

--exec is the olimage binary the unit runs; by default this one. With
--key and --sidecar the unit runs 'olimage activate --key PUB --sidecar
SIDECAR': each boot checks the signature and the volume against the
sidecar CI signed before anything changes (replace the sidecar and its
.sig with each release's).`,
		Example: `  olimage activate-unit --write         # on the VM, after 'olimage fstab /dev/vdb --write'
  olimage activate-unit                 # print the unit
  olimage activate-unit --write --root /mnt/vm --exec /usr/local/bin/olimage
  olimage activate-unit --write --key /etc/olimage/ci.pub --sidecar /etc/olimage/ol-web.manifest.json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActivateUnit(e, opts, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.volume, "volume", manifest.DefaultMount, "where the volume is mounted")
	cmd.Flags().StringVar(&opts.root, "root", "/", "with --write, the root file system to install the unit on")
	cmd.Flags().StringVar(&opts.exec, "exec", "", "the olimage binary the unit runs (default: this one)")
	cmd.Flags().BoolVar(&opts.write, "write", false, "install and enable the unit")
	cmd.Flags().StringVar(&opts.key, "key", "", "SSH public key on the VM the unit's activate checks the sidecar's signature with (with --sidecar)")
	cmd.Flags().StringVar(&opts.sidecar, "sidecar", "", "the signed sidecar on the VM the unit's activate checks the volume against (with --key)")
	return cmd
}

func runActivateUnit(e *env, opts activateUnitOptions, out io.Writer) error {
	if opts.exec == "" {
		self, err := os.Executable()
		if err != nil {
			return hintError{fmt.Errorf("finding the olimage binary: %w", err), "give it with --exec"}
		}
		if self, err = filepath.EvalSymlinks(self); err != nil {
			return hintError{fmt.Errorf("finding the olimage binary: %w", err), "give it with --exec"}
		}
		opts.exec = self
	}
	uo := activate.UnitOptions{Exec: opts.exec, Volume: opts.volume, Key: opts.key, Sidecar: opts.sidecar}
	if !opts.write {
		text, err := activate.ActivateUnit(uo)
		if err != nil {
			return usageError{err}
		}
		_, err = io.WriteString(out, text)
		return err
	}
	changed, err := activate.InstallActivateUnit(e.ctx, opts.root, uo, nil)
	for _, p := range changed {
		fmt.Fprintf(out, "wrote /%s\n", p)
	}
	if err != nil {
		return err
	}
	if len(changed) == 0 {
		_, err = fmt.Fprintf(out, "%s: unchanged\n", activate.ActivateUnitName)
	}
	return err
}
