package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
)

type activateOptions struct {
	volume string
	root   string
	dryRun bool
	json   bool
	force  bool
	// roleChange allows a volume of another role than the active one.
	roleChange bool
	// forceAccounts allows ids that differ from the VM's accounts.
	forceAccounts bool
	// signed: check the volume against a signed sidecar first (trust.go).
	signed signedVolume
}

func newActivateCmd(e *env) *cobra.Command {
	var opts activateOptions
	cmd := &cobra.Command{
		Use:   "activate",
		Short: "Link /opt and /etc paths of the root file system into the mounted volume",
		Long: `Read the activation plan of the volume mounted at --volume
(VOLUME/.olimage/manifest.json) and make each of its links: ROOT/PATH
becomes a symlink to VOLUME/TARGET, the text as seen on the VM
(/etc/nginx/nginx.conf -> /1/etc/nginx/nginx.conf).

Whatever a link replaces is moved aside, never deleted, to
ROOT/var/lib/olimage/backup/IMAGE/PATH; missing parent directories are
created. Every step is recorded in ROOT/var/lib/olimage/journal.json, written
before the step and after it, so 'olimage deactivate' restores exactly what
was there, and a run that is interrupted at any point is completed by the
next activate or deactivate.

Run again with the same volume, activate changes nothing. Run with the
volume of another image (a new release), it removes the links the new plan
drops (restoring what they replaced), keeps those that are unchanged and
makes the new ones.

Before changing anything, activate checks the mounted volume against its
manifest: schema olimage.manifest/v1, every link target present with the
type the manifest gives, and every entry's type, mode, owner, size, link
text and content sha256, so a damaged or altered volume is refused
(--force skips this; 'olimage verify DEVICE' also checks the ext4
structures). It refuses, forced or not, a link below a symlink it did
not make or below a file, a plan linking anything but the image's own
top-level /opt entries and /etc paths (each to the same path in the
volume), and sensitive paths (/etc/shadow, /etc/sudoers*, /etc/ssh/**,
/etc/pam.d/**, home directories, ...) unless ROOT/etc/olimage/policy.yaml
allows them for the role (docs/activation.md); and it refuses a volume of
another role than the active image's unless --role-change. It compares
the user and group ids the image's files use with ROOT/etc/passwd and
ROOT/etc/group and refuses, listing every account missing or with another
id, unless --force-accounts ('olimage sysusers' creates them). It refuses
until every secret the role declares is a regular file at its path with
the declared owner and mode; one that is missing there is linked to the
VM's copy at ROOT/etc/olimage/secrets/ROLE/PATH if that passes the same
test, in directories owned by root and writable by no one else (journaled:
deactivate removes the link). It changes nothing then.

Unit files the image ships under etc/systemd/system are written to the root
disk as regular files, as systemd reads them at boot before the volume is
mounted; each service gets a drop-in (UNIT.d/olimage.conf) ordering it after
olimage-activate.service and requiring the volume's mount, and enablement
links (*.wants/) keep the image's own text. A top-level /opt directory that
holds deploys (opt/openlibrary/deploys/SERVICE/BIN) becomes a directory on
the root disk whose entries are linked one by one, and each service's active
link points straight at its bin, so 'olimage switch' can repoint it. On the
running system (--root / under systemd), activate then reloads systemd's
units, stops the units the image no longer ships and starts those it
enables (restarts them when the run changed anything), without waiting
for them.

Output: one line per step: OP PATH DETAIL, where OP is mkdir (a parent
directory made), move (the original moved aside to DETAIL), link (PATH now
links to DETAIL), write (PATH is now a file activate wrote), keep (already
in place), unlink, remove, restore or rmdir (undoing a previous image's
steps); '(resumed)' marks a step an
interrupted run had started. --dry-run prints the same steps and changes
nothing. --json prints the document olimage.activate/v1 (docs/json.md).`,
		Example: `  olimage activate                      # the volume at /1, on this machine
  olimage activate --dry-run            # show what it would change
  olimage activate --root /mnt/vm --volume /1 --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActivate(e, opts, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.volume, "volume", manifest.DefaultMount, "where the volume is mounted, as seen from --root")
	cmd.Flags().StringVar(&opts.root, "root", "/", "the root file system to change")
	cmd.Flags().BoolVarP(&opts.dryRun, "dry-run", "n", false, "print the steps, change nothing")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.activate/v1)")
	cmd.Flags().BoolVar(&opts.force, "force", false, "activate a volume whose manifest fails verification")
	cmd.Flags().BoolVar(&opts.roleChange, "role-change", false, "activate a volume of another role than the active image's")
	cmd.Flags().BoolVar(&opts.forceAccounts, "force-accounts", false, "activate although the image's files use ids other than the VM's accounts")
	opts.signed.flags(cmd)
	return cmd
}

func runActivate(e *env, opts activateOptions, out io.Writer) error {
	if err := needLinux("activate"); err != nil {
		return err
	}
	if err := opts.signed.check(e, opts.root, opts.volume, out); err != nil {
		return err
	}
	rep, err := activate.Activate(e.ctx, activate.Options{Root: opts.root, Volume: opts.volume, Force: opts.force, DryRun: opts.dryRun, RoleChange: opts.roleChange, ForceAccounts: opts.forceAccounts})
	if err != nil {
		// What was done before the error is in the journal: status shows it.
		return activationError(err)
	}
	return printActivation(out, opts.json, rep)
}

// printActivation prints the steps of an activate or deactivate report.
func printActivation(out io.Writer, asJSON bool, rep *activate.Report) error {
	if asJSON {
		return writeJSON(out, rep)
	}
	verb := "activate"
	if rep.Image == nil {
		verb = "deactivate"
	}
	img := rep.Image
	if img == nil {
		img = rep.Previous
	}
	switch {
	case img == nil:
		fmt.Fprintf(out, "%s: nothing to undo: no image is active on %s (no journal at %s)\n", verb, rep.Root, filepath.Join(rep.Root, activate.JournalFile))
		return nil
	case rep.DryRun:
		fmt.Fprintf(out, "%s (dry run) %s %s tree %s on %s\n", verb, img.Role, img.UUID, short(img.Tree), rep.Root)
	default:
		fmt.Fprintf(out, "%s %s %s tree %s on %s\n", verb, img.Role, img.UUID, short(img.Tree), rep.Root)
	}
	return printChanges(out, rep.Changes)
}

// printChanges prints one line per step, and a count of each kind.
func printChanges(out io.Writer, changes []activate.Change) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	counts := map[activate.Op]int{}
	for _, c := range changes {
		counts[c.Op]++
		detail := c.Target
		switch c.Op {
		case activate.OpMove, activate.OpRestore:
			detail = "/" + c.Backup
		case activate.OpWrite, activate.OpRemove:
			detail = fmt.Sprintf("(a file of %d bytes)", len(c.Content))
		}
		if c.Resume {
			detail += " (resumed)"
		}
		fmt.Fprintf(tw, "  %s\t/%s\t%s\n", c.Op, c.Path, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var sum []string
	for _, k := range []struct {
		op   activate.Op
		what string
	}{
		{activate.OpLink, "linked"}, {activate.OpKeep, "kept"}, {activate.OpMove, "moved aside"}, {activate.OpMkdir, "directories made"},
		{activate.OpWrite, "files written"}, {activate.OpUnlink, "unlinked"}, {activate.OpRemove, "files removed"},
		{activate.OpRestore, "restored"}, {activate.OpRmdir, "directories removed"}, {activate.OpState, "state directories made"},
	} {
		if counts[k.op] > 0 {
			sum = append(sum, fmt.Sprintf("%d %s", counts[k.op], k.what))
		}
	}
	if len(sum) == 0 {
		sum = []string{"nothing to do"}
	}
	_, err := fmt.Fprintln(out, strings.Join(sum, ", "))
	return err
}

// activationError adds the next step to the errors activation refuses with.
func activationError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, activate.ErrVerify):
		return hintError{err, "check the volume with 'olimage verify DEVICE'; --force activates it anyway"}
	case errors.Is(err, activate.ErrUnsafe):
		return hintError{err, "olimage changes only real directories it can see; fix the path on the root file system, or the role's activation plan"}
	case errors.Is(err, activate.ErrNoVolume):
		return hintError{err, "mount the volume first: 'olimage fstab DEVICE --write && mount " + manifest.DefaultMount + "', or name where it is with --volume"}
	case errors.Is(err, activate.ErrSecrets):
		return hintError{err, "put each secret at its path, or at /" + activate.SecretsDir + "/ROLE/PATH for activate to link, with the owner and mode named; 'olimage status' lists them"}
	case errors.Is(err, activate.ErrAccounts):
		return hintError{err, "create the accounts with the fleet's ids first: 'olimage sysusers DEVICE > /etc/sysusers.d/olimage.conf && systemd-sysusers'; --force-accounts activates anyway"}
	case errors.Is(err, activate.ErrRoleChange):
		return hintError{err, "attach the volume of this machine's role; to make the machine another role, run again with --role-change"}
	case errors.Is(err, activate.ErrBadJournal):
		return hintError{err, "'olimage recover --dry-run' shows how the originals kept in " + activate.BackupDir + " would go back"}
	case errors.Is(err, activate.ErrJournalIntact):
		return hintError{err, "'olimage deactivate' undoes what the journal records"}
	case errors.Is(err, activate.ErrConflict):
		return hintError{err, "'olimage status' shows every link; after moving the path away, run the command again"}
	}
	return err
}
