package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/sshsig"
	"github.com/internetarchive/olimage/verify"
)

type veritytabOptions struct {
	sidecar   string
	key       string
	signature string
	mount     string
	unit      bool
	fstab     bool
	write     bool
	root      string
}

// VerityUnitName is the oneshot unit that opens the volume through
// dm-verity before it is mounted.
const VerityUnitName = "olimage-verity.service"

func newVeritytabCmd(e *env) *cobra.Command {
	var opts veritytabOptions
	cmd := &cobra.Command{
		Use:   "veritytab DEVICE --sidecar FILE",
		Short: "Print what opens the volume through dm-verity on a VM",
		Long: `Print what opens DEVICE (the volume's disk, /dev/vdb) through dm-verity, so
that the kernel checks every block read against the root hash CI recorded:
a changed block is an I/O error, not data. The image must have been built
with --verity (its hash tree follows the file system on the same disk, at
the sidecar's hash_offset). The root hash comes from the sidecar CI built,
never from the disk; with --key, the sidecar's signature is checked first.

Without options: a line for /etc/veritytab, read by systemd-veritysetup
(where it knows hash-offset=; Debian bookworm's systemd 252 may not).
  --unit   a oneshot unit, /etc/systemd/system/` + VerityUnitName + `, that runs
           veritysetup open before the volume is mounted (works with any
           systemd; enable it with systemctl enable)
  --fstab  the /etc/fstab line that mounts /dev/mapper/olimage-ROLE at --mount
           (instead of the disk by label), after the unit

  --write  install both on ROOT: the unit, enabled (the link in
           1.mount.requires/ 'systemctl enable' makes), and the line as
           /etc/fstab's one entry for --mount (replacing 'olimage fstab
           --write''s); on the running system, reload systemd's units.
           It prints the paths it changed; run again, it changes nothing.

The device-mapper name is olimage-ROLE. The fstab line has no fsck pass:
fsck cannot open the read-only device-mapper device, and the kernel
checks every block against the root hash instead.`,
		Example: `  olimage veritytab /dev/vdb --sidecar /etc/olimage/ol-web.manifest.json --key /etc/olimage/ci.pub --write
  olimage veritytab /dev/vdb --sidecar ol-web.img.manifest.json --unit > /etc/systemd/system/olimage-verity.service
  olimage veritytab /dev/vdb --sidecar ol-web.img.manifest.json --fstab
  olimage veritytab /dev/vdb --sidecar ol-web.img.manifest.json   # an /etc/veritytab line`,
		Args: exactArgs(1, "DEVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVeritytab(e, opts, args[0], e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.sidecar, "sidecar", "", "the image's sidecar, with the root hash and hash offset (required)")
	cmd.Flags().StringVar(&opts.key, "key", "", "SSH public key that must have signed the sidecar")
	cmd.Flags().StringVar(&opts.signature, "signature", "", "the sidecar's signature (default SIDECAR.sig)")
	cmd.Flags().StringVar(&opts.mount, "mount", manifest.DefaultMount, "mount point, for --fstab")
	cmd.Flags().BoolVar(&opts.unit, "unit", false, "print a oneshot unit running veritysetup open")
	cmd.Flags().BoolVar(&opts.fstab, "fstab", false, "print the fstab line mounting the opened volume")
	cmd.Flags().BoolVar(&opts.write, "write", false, "install the unit, enabled, and make the line /etc/fstab's entry for --mount")
	cmd.Flags().StringVar(&opts.root, "root", "/", "with --write, the root file system to install them on")
	return cmd
}

func runVeritytab(e *env, opts veritytabOptions, dev string, out io.Writer) error {
	switch {
	case opts.sidecar == "":
		return usageError{errors.New("veritytab: --sidecar FILE is required: the root hash comes from CI, not from the disk")}
	case opts.unit && opts.fstab:
		return usageError{errors.New("veritytab: --unit or --fstab, not both")}
	case opts.write && (opts.unit || opts.fstab):
		return usageError{errors.New("veritytab: --write installs both the unit and the fstab line; without --unit or --fstab")}
	case !strings.HasPrefix(dev, "/"):
		return usageError{fmt.Errorf("veritytab: device %q: want an absolute path", dev)}
	case strings.ContainsAny(dev, " \t\n\\\"'"):
		return usageError{fmt.Errorf("veritytab: device %q: spaces, quotes and backslashes are not supported", dev)}
	}
	data, err := os.ReadFile(opts.sidecar)
	if err != nil {
		return err
	}
	if opts.key != "" {
		k, err := readPublicKey(opts.key)
		if err != nil {
			return err
		}
		sigPath := opts.signature
		if sigPath == "" {
			sigPath = opts.sidecar + verify.SignatureSuffix
		}
		sig, err := os.ReadFile(sigPath)
		if err != nil {
			return err
		}
		if err := sshsig.Verify(k, verify.Namespace, data, sig); err != nil {
			fmt.Fprintf(out, "%s: %v\n", sigPath, err)
			return errFindings
		}
	}
	head, err := manifest.ReadSidecarHead(data)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.sidecar, err)
	}
	_, m, _, err := manifest.Head(data)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.sidecar, err)
	}
	v := head.Image.Verity
	if v == nil || v.HashOffset == 0 {
		return hintError{fmt.Errorf("%s: the image has no dm-verity tree", opts.sidecar), "build it with olimage build --verity"}
	}
	name := "olimage-" + m.Role
	mount := activate.UnitName(opts.mount)
	device := strings.TrimSuffix(activate.UnitName(dev), ".mount") + ".device"
	unit := fmt.Sprintf(`# /etc/systemd/system/%s
[Unit]
Description=dm-verity for the olimage volume %s (root hash %s)
Documentation=https://github.com/internetarchive/olimage
DefaultDependencies=no
BindsTo=%s
After=%s
Before=%s local-fs-pre.target umount.target
Conflicts=umount.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/veritysetup open %s %s %s %s --hash-offset=%d
ExecStop=/usr/sbin/veritysetup close %s

[Install]
RequiredBy=%s
`, VerityUnitName, m.Role, short(v.RootHash), device, device, mount,
		dev, name, dev, v.RootHash, v.HashOffset, name, mount)
	// No fsck pass: fsck cannot open the read-only device-mapper device
	// (e2fsck -p exits 8 on a read-only device), and the kernel checks
	// every block against the root hash instead.
	fstab := fmt.Sprintf("/dev/mapper/%s %s ext4 %s,x-systemd.requires=%s,x-systemd.before=%s 0 0\n",
		name, opts.mount, activate.MountOptions, VerityUnitName, activate.ActivateUnitName)
	switch {
	case opts.write:
		changed, err := activate.InstallUnit(e.ctx, opts.root, VerityUnitName, unit, mount+".requires", nil)
		for _, p := range changed {
			fmt.Fprintf(out, "wrote /%s\n", p)
		}
		if err != nil {
			return err
		}
		line := strings.TrimSuffix(fstab, "\n")
		did, err := activate.WriteFstab(opts.root, opts.mount, line)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s: %s %s\n", activate.FstabFile, did, line)
		return err
	case opts.unit:
		_, err = io.WriteString(out, unit)
	case opts.fstab:
		_, err = io.WriteString(out, fstab)
	default:
		_, err = fmt.Fprintf(out, "%s %s %s %s hash-offset=%d\n", name, dev, dev, v.RootHash, v.HashOffset)
	}
	return err
}
