package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/artifact"
	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/overlays"
	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/roles"
)

// hintFor says what to do after err, which brought no hint of its own,
// from the kind of error and the command that failed. Errors of a kind
// only one command meets get their hint where they are made (hintError).
func hintFor(cmd *cobra.Command, err error) string {
	var h hintError
	var u usageError
	var pe *fs.PathError
	var re *roles.Error
	var ne *net.OpError
	var se *overlays.SourceError
	switch {
	case errors.As(err, &h):
		return h.hint
	case errors.Is(err, overlays.ErrNoRoom):
		return "spool to a directory with more room: --tmpdir DIR or $TMPDIR"
	case errors.As(err, &u):
		return usageHint(cmd)
	case errors.Is(err, image.ErrNoFS):
		return "give an image olimage build wrote (.img, .img.zst, .gpt.img, .qcow2) or the device holding one; 'file PATH' says what PATH is"
	case errors.Is(err, operand.ErrCorrupt):
		return "the image is damaged: 'olimage verify IMAGE' lists what is wrong; build it again or fetch a good copy"
	case errors.Is(err, operand.ErrUnsupported):
		return "olimage reads the ext4 features its own images and mke2fs's defaults use; 'olimage inspect IMAGE' lists this one's"
	case errors.Is(err, operand.ErrNotFound):
		img := "IMAGE"
		if args := cmd.Flags().Args(); len(args) > 0 {
			img = args[0]
		}
		return "list what the image holds with 'olimage ls -R " + img + "'"
	case errors.As(err, &se) && errors.Is(err, fs.ErrNotExist):
		return "put the source in place at " + se.Source + ", or fix the overlay declared at " + se.Pos.String()
	case errors.Is(err, overlays.ErrConflict):
		return "settle it in the role: the later overlay's conflict: (override, identical, error) or conflicts: for some paths, or remove: the path first (docs/fleet.md, \"Merging\")"
	case errors.Is(err, overlays.ErrTopLevel), errors.Is(err, overlays.ErrReserved):
		return "'olimage plan " + roleArg(cmd) + "' lists every path with the overlay that supplied it"
	case errors.Is(err, overlays.ErrSecretInImage):
		return "a secret reaches a VM at activation, never in the image: drop it from the source (docs/vm.md, \"Secrets\")"
	case errors.Is(err, policy.ErrPolicy):
		return "remove what the policy refuses from the source, or exempt the path with a reason in " + roles.FleetFile + " (policy: {allow: [{path: GLOB, reason: ...}]})"
	case errors.Is(err, overlays.ErrUnsafe):
		return "re-create the source without the entry the message names; 'tar -tvf ARCHIVE' lists an archive's entries"
	case errors.Is(err, overlays.ErrTooLarge), errors.Is(err, overlays.ErrOutside):
		return "if the source is what you meant, allow it in " + roles.FleetFile + " as the message says; 'olimage validate' checks every role's sources"
	case errors.As(err, &se):
		return "fix the overlay's source " + se.Source + " or its declaration at " + se.Pos.String() + "; 'olimage validate' checks every role"
	case errors.Is(err, operand.ErrUnknown):
		return "give an image file, a manifest JSON, a registry reference (HOST/REPO:TAG) or a role of the fleet named by -f ('olimage roles' lists them)"
	case errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist):
		return missingHint(cmd, pe.Path)
	case errors.As(err, &re):
		return "fix " + re.Pos.String() + "; 'olimage validate' lists every problem of the fleet"
	case errors.Is(err, roles.ErrBroken):
		return "'olimage validate' lists the role's problems with file and line; build the other roles by name meanwhile"
	case errors.Is(err, builder.ErrOutput):
		return "give -o a directory you may write in, with room for the image, or a new file name ending in .img, .img.zst, .gpt.img or .qcow2 there"
	case errors.Is(err, artifact.ErrDigest):
		return "the registry served other bytes than its manifest names: run the command again, and check the registry if it persists"
	case errors.Is(err, artifact.ErrNotImage):
		return "name an image that 'olimage push' published; 'olimage inspect REF' shows what a reference holds"
	case errors.As(err, &ne):
		return "check that the registry is up and reachable from here (" + ne.Addr.String() + "); a plain-HTTP registry on localhost needs --insecure"
	case errors.Is(err, fs.ErrPermission):
		return "run it as a user that may read (and, for outputs, write) that path; devices and activation need root"
	}
	// An error of no known kind is olimage's own failure more often than
	// the command line's: the usage line would send the user looking in
	// the wrong place.
	return "if the message does not say what to change, run the command again with -v and report its output with 'olimage version'"
}

// usageHint shows the command's synopsis and first example: what a
// correct command line looks like.
func usageHint(cmd *cobra.Command) string {
	s := "usage: " + cmd.UseLine()
	if ex, _, _ := strings.Cut(strings.TrimSpace(cmd.Example), "\n"); ex != "" {
		s += "; for example: " + strings.Join(strings.Fields(ex), " ")
	}
	return s
}

// missingHint says what path should have been, by what it was for.
func missingHint(cmd *cobra.Command, path string) string {
	flag := func(name string) bool {
		f := cmd.Flags().Lookup(name)
		return f != nil && f.Value.String() == path
	}
	// flagHolds says path lies under the directory flag name gives.
	flagHolds := func(name, path string) bool {
		f := cmd.Flags().Lookup(name)
		return f != nil && f.Value.String() != "/" && strings.HasPrefix(path, filepath.Clean(f.Value.String())+"/")
	}
	switch {
	case filepath.Base(path) == roles.FleetFile:
		return fmt.Sprintf("point -f (or $OLIMAGE_FLEET) at the fleet directory, the one holding %s and roles/; it is %s now", roles.FleetFile, filepath.Dir(path))
	case flag("key") && cmd.Name() == "sign":
		return "give the SSH private key to sign with (ssh-keygen -t ed25519 -f ci-key makes one)"
	case flag("key"):
		return "give the SSH public key (KEY.pub) of the key that signed the sidecar"
	case flag("sidecar") || strings.HasSuffix(path, image.SidecarSuffix):
		return "olimage build writes IMAGE" + image.SidecarSuffix + " beside each image: keep it with the image, or name it with --sidecar FILE"
	case flagHolds("root", path):
		return "--root names the root file system to change, and it has no " + filepath.Dir(path) + ": give the VM's root directory"
	case cmd.Name() == "diff":
		return "A and B are image or manifest files, registry references or roles of the fleet: check " + path
	}
	return "check the path " + path + "; 'olimage build ROLE -o DIR' writes images into DIR"
}

// roleArg is the role the command line names, or ROLE.
func roleArg(cmd *cobra.Command) string {
	if args := cmd.Flags().Args(); len(args) > 0 {
		return args[0]
	}
	return "ROLE"
}
