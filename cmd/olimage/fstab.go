package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
)

type fstabOptions struct {
	mount string
	label bool
}

func newFstabCmd(e *env) *cobra.Command {
	var opts fstabOptions
	cmd := &cobra.Command{
		Use:   "fstab IMAGE",
		Short: "Print the /etc/fstab line that mounts an image's volume",
		Long: `Read the UUID (or with --label the label) of the ext4 file system in IMAGE
(an image file, raw or compressed or a GPT disk, or a block device such as
/dev/vdb) from its superblock, and print the /etc/fstab line that mounts it
at --mount:

  UUID=... /1 ext4 ` + activate.MountOptions + ` 0 2

nofail keeps a missing volume from failing or holding up the boot.
Needs no root and mounts nothing.`,
		Example: `  olimage fstab out/ol-web-2024.01-979dab02b02f.img >> /etc/fstab
  olimage fstab /dev/vdb --label`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFstab(e, opts, args[0], false, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.mount, "mount", manifest.DefaultMount, "mount point")
	cmd.Flags().BoolVar(&opts.label, "label", false, "mount by LABEL= instead of UUID=")
	return cmd
}

func newMountUnitCmd(e *env) *cobra.Command {
	var opts fstabOptions
	cmd := &cobra.Command{
		Use:   "mount-unit IMAGE",
		Short: "Print the systemd .mount unit that mounts an image's volume",
		Long: `Read the UUID (or with --label the label) of the ext4 file system in IMAGE
(an image file or a block device) and print the systemd mount unit that
mounts it at --mount, by /dev/disk/by-uuid (or by-label). The first line, a
comment, names the file to install it as: systemd requires the unit's name
to be the escaped mount point (1.mount for /1, srv-data.mount for
/srv/data). Enable it with 'systemctl enable --now 1.mount'.`,
		Example: `  olimage mount-unit out/ol-web-2024.01-979dab02b02f.img > /etc/systemd/system/1.mount`,
		Args:    exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFstab(e, opts, args[0], true, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.mount, "mount", manifest.DefaultMount, "mount point")
	cmd.Flags().BoolVar(&opts.label, "label", false, "mount by label instead of UUID")
	return cmd
}

func runFstab(e *env, opts fstabOptions, img string, unit bool, out io.Writer) error {
	if len(opts.mount) == 0 || opts.mount[0] != '/' {
		return usageError{fmt.Errorf("--mount %q: want an absolute path", opts.mount)}
	}
	fs, err := activate.ReadFS(img)
	if err != nil {
		return err
	}
	var text string
	if unit {
		text, err = activate.MountUnit(fs, opts.mount, opts.label)
	} else {
		text, err = activate.FstabLine(fs, opts.mount, opts.label)
		text += "\n"
	}
	if err != nil {
		return hintError{fmt.Errorf("%s: %w", img, err), "leave out --label"}
	}
	_, err = io.WriteString(out, text)
	return err
}
