package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/sshsig"
	"github.com/internetarchive/olimage/verify"
)

type signOptions struct {
	key     string
	sidecar string
	output  string
}

func newSignCmd(e *env) *cobra.Command {
	var opts signOptions
	cmd := &cobra.Command{
		Use:   "sign IMAGE --key KEY",
		Short: "Sign an image's sidecar with an SSH key",
		Long: `Sign the sidecar of IMAGE (IMAGE.manifest.json, or --sidecar), which names
the image's dm-verity root hash and tree parameters (and its raw sha256
when built with --sha256), with the SSH private key in KEY. The signature
is an SSH signature (namespace "olimage") written to SIDECAR.sig, or -o
FILE: the file 'ssh-keygen -Y sign -n olimage' writes, so either tool can
sign and either can check:

  olimage verify IMAGE --key KEY.pub
  ssh-keygen -Y verify -f allowed_signers -I ci -n olimage -s SIDECAR.sig < SIDECAR

KEY must not be protected by a passphrase; for one that is, sign with
ssh-keygen -Y sign (it asks for the passphrase). Prints the signature's
path and the key's fingerprint.`,
		Example: `  olimage sign out/ol-web-2024.01-979dab02b02f.img --key ~/.ssh/ci_ed25519
  olimage verify out/ol-web-2024.01-979dab02b02f.img --key ~/.ssh/ci_ed25519.pub`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSign(opts, args[0], e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.key, "key", "", "SSH private key file (OpenSSH or PEM, without passphrase)")
	cmd.Flags().StringVar(&opts.sidecar, "sidecar", "", "the sidecar to sign (default IMAGE.manifest.json)")
	cmd.Flags().StringVarP(&opts.output, "output", "o", "", "signature file (default SIDECAR.sig)")
	return cmd
}

func runSign(opts signOptions, img string, out io.Writer) error {
	if opts.key == "" {
		return usageError{errors.New("sign: --key KEY is required")}
	}
	side := opts.sidecar
	if side == "" {
		side = img + image.SidecarSuffix
	}
	sigPath := opts.output
	if sigPath == "" {
		sigPath = side + verify.SignatureSuffix
	}
	keyData, err := os.ReadFile(opts.key)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(keyData)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return hintError{fmt.Errorf("%s: the key is protected by a passphrase", opts.key),
				fmt.Sprintf("sign with ssh-keygen -Y sign -n %s -f %s %s (it writes %s)", verify.Namespace, opts.key, side, side+verify.SignatureSuffix)}
		}
		return hintError{fmt.Errorf("%s: not an SSH private key: %w", opts.key, err), "give the private key file (not KEY.pub); ssh-keygen -t ed25519 -f ci-key makes a pair"}
	}
	data, err := os.ReadFile(side)
	if err != nil {
		return hintError{err, "sign needs the sidecar that olimage build wrote beside the image; give it with --sidecar"}
	}
	// Only a sidecar olimage can check against an image is worth signing.
	if _, err := manifest.ReadSidecarHead(data); err != nil {
		return fmt.Errorf("%s: %w", side, err)
	}
	sig, err := sshsig.Sign(signer, verify.Namespace, data)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(sigPath, sig); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: signed %s with %s %s\n", sigPath, side, signer.PublicKey().Type(), ssh.FingerprintSHA256(signer.PublicKey()))
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so no reader sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := image.WriteTemp(path, data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
