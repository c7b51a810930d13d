package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/manifest"
)

type fstabOptions struct {
	mount string
	uuid  bool
	write bool
	root  string
	json  bool
}

// fstabJSON is fstab --json's document.
type fstabJSON struct {
	Schema string `json:"schema"`
	Image  string `json:"image"`
	UUID   string `json:"uuid"`
	Label  string `json:"label"`
	Mount  string `json:"mount"`
	Line   string `json:"line"`
	Fstab  string `json:"fstab,omitempty"` // with --write: what was done to etc/fstab
}

func newFstabCmd(e *env) *cobra.Command {
	var opts fstabOptions
	cmd := &cobra.Command{
		Use:   "fstab IMAGE|DEVICE",
		Short: "Print or write the /etc/fstab line that mounts an image's volume",
		Long: `Read the label (or with --uuid the UUID) of the ext4 file system in IMAGE
(an image file, raw or compressed or a GPT disk, or a block device such as
/dev/vdb) from its superblock, and print the /etc/fstab line that mounts it
read-only at --mount:

  LABEL=ol-web /1 ext4 ` + activate.MountOptions + ` 0 2

A role's label stays the same from release to release, so the line keeps
working when the next release's volume is attached; --uuid pins this one
release. There is no nofail: a missing volume fails the boot instead of
letting the role's services start without it. olimage-activate.service
('olimage activate-unit') requires the mount and runs after it.

With --write the line becomes the one entry for --mount in ROOT/etc/fstab:
an entry for the same mount point is replaced (and any duplicate dropped),
otherwise the line is added; every other line stays as it was, and the
file is replaced atomically. Running it again changes nothing. It prints
what it did: added, replaced or unchanged, and the line.

Needs no root to print and mounts nothing.`,
		Example: `  olimage fstab /dev/vdb --write        # on the VM: one /1 entry, by label
  olimage fstab /dev/vdb --uuid         # print the line for this release only
  olimage fstab out/ol-web-2024.01-979dab02b02f.img --write --root /mnt/vm`,
		Args: exactArgs(1, "IMAGE or DEVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFstab(e, opts, args[0], false, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.mount, "mount", manifest.DefaultMount, "mount point")
	cmd.Flags().BoolVar(&opts.uuid, "uuid", false, "mount by UUID= (this release only) instead of LABEL=")
	cmd.Flags().BoolVar(&opts.write, "write", false, "make the line ROOT/etc/fstab's one entry for the mount point")
	cmd.Flags().StringVar(&opts.root, "root", "/", "with --write, the root file system whose etc/fstab to edit")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.fstab/v1)")
	return cmd
}

func newMountUnitCmd(e *env) *cobra.Command {
	var opts fstabOptions
	cmd := &cobra.Command{
		Use:   "mount-unit IMAGE|DEVICE",
		Short: "Print the systemd .mount unit that mounts an image's volume",
		Long: `Read the label (or with --uuid the UUID) of the ext4 file system in IMAGE
(an image file or a block device) and print the systemd mount unit that
mounts it read-only at --mount, by /dev/disk/by-label (or by-uuid). The
first line, a comment, names the file to install it as: systemd requires
the unit's name to be the escaped mount point (1.mount for /1,
srv-data.mount for /srv/data). Use it instead of the fstab line, not with
it. Enable it with 'systemctl enable 1.mount'.`,
		Example: `  olimage mount-unit /dev/vdb > /etc/systemd/system/1.mount
  olimage mount-unit out/ol-web-2024.01-979dab02b02f.img --uuid`,
		Args: exactArgs(1, "IMAGE or DEVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFstab(e, opts, args[0], true, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.mount, "mount", manifest.DefaultMount, "mount point")
	cmd.Flags().BoolVar(&opts.uuid, "uuid", false, "mount by UUID (this release only) instead of label")
	return cmd
}

func runFstab(e *env, opts fstabOptions, img string, unit bool, out io.Writer) error {
	if len(opts.mount) == 0 || opts.mount[0] != '/' {
		return usageError{fmt.Errorf("--mount %q: want an absolute path", opts.mount)}
	}
	fs, err := readFS(img)
	if err != nil {
		return err
	}
	var text string
	if unit {
		text, err = activate.MountUnit(fs, opts.mount, opts.uuid)
	} else {
		text, err = activate.FstabLine(fs, opts.mount, opts.uuid)
	}
	if errors.Is(err, activate.ErrNoLabel) {
		return hintError{fmt.Errorf("%s: %w", img, err), "add --uuid, or give the role an image label"}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	doc := fstabJSON{Schema: "olimage.fstab/v1", Image: img, UUID: fs.UUID, Label: fs.Label, Mount: opts.mount, Line: text}
	if opts.json && !opts.write {
		return writeJSON(out, doc)
	}
	if unit || !opts.write {
		if !unit {
			text += "\n"
		}
		_, err = io.WriteString(out, text)
		return err
	}
	did, err := activate.WriteFstab(opts.root, opts.mount, text)
	if err != nil {
		return err
	}
	if opts.json {
		doc.Fstab = fmt.Sprint(did)
		return writeJSON(out, doc)
	}
	_, err = fmt.Fprintf(out, "%s: %s %s\n", activate.FstabFile, did, text)
	return err
}

// readFS reads the label and UUID of the file system on a block device or
// in an image file (raw, compressed or a GPT disk; - is stdin).
func readFS(name string) (activate.FS, error) {
	fi, err := os.Stat(name)
	if err != nil && name != "-" {
		return activate.FS{}, err
	}
	var r io.ReaderAt
	if err == nil && fi.Mode()&fs.ModeDevice != 0 {
		f, err := os.Open(name)
		if err != nil {
			return activate.FS{}, err
		}
		defer f.Close()
		r = f
	} else {
		img, err := image.Open(name)
		if err != nil {
			return activate.FS{}, err
		}
		defer img.Close()
		r = img
	}
	return activate.ReadFS(r, name)
}
