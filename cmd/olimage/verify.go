package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/verify"
)

type verifyOptions struct {
	json           bool
	key            string // public key that must have signed the sidecar
	sidecar        string
	signature      string
	expectRootHash string
	progress       bool
}

func newVerifyCmd(e *env) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check an image's structures and every file against its manifest",
		Long: `Check IMAGE without mounting it. First its ext4 structures: superblock,
group descriptor, bitmap, inode, extent and directory checksums
(metadata_csum), and the block and inode bitmaps against what is in use.
Then every entry against the manifest the image carries: type, mode, owner,
mtime, link target, xattrs, and the sha256 of every file's content.

Prints one line per finding, naming the structure and inode or the path, and
exits 1 if there is any. IMAGE may be an attached device (/dev/vdb).

The manifest an image carries proves nothing against someone who rewrites
the image: check it against what CI built as well. An image file's sidecar
(IMAGE.manifest.json), when there is one, is checked without asking.
  --key PUB             the sidecar (IMAGE.manifest.json, or --sidecar) must
                        carry a signature (SIDECAR.sig, or --signature) by the
                        SSH public key in PUB, made by 'olimage sign'. Checked
                        first; if it fails nothing else is.
  --sidecar FILE        check the image against FILE's digests: the dm-verity
                        root hash of the file system, the hash tree when the
                        image carries one, and the raw sha256 if recorded.
  --expect-root-hash H  the image's dm-verity root hash must be H (from CI's
                        build output); the salt comes from the sidecar, or from
                        the tree's superblock of an image built with --verity.
Each failure is a finding naming what failed: the signature file, dm-verity
(root hash, superblock, hash block, truncated tree) or sha256.`,
		Example: `  olimage verify out/ol-web-2024.01-979dab02b02f.img
  olimage verify /dev/vdb --json
  olimage verify out/ol-web.img --key ci.pub
  olimage verify /dev/vdb --key /etc/olimage/ci.pub --sidecar /etc/olimage/ol-web.img.manifest.json
  olimage verify out/ol-web.img --expect-root-hash 1c99beeeaceb94064ac5fe03844e3097ea176e06625c4994f09938a067b67a34`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(e, opts, args[0], e.stdout)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.verify/v1)")
	cmd.Flags().StringVar(&opts.key, "key", "", "SSH public key file that must have signed the sidecar")
	cmd.Flags().StringVar(&opts.sidecar, "sidecar", "", "sidecar to check the image against (default IMAGE.manifest.json when it exists)")
	cmd.Flags().StringVar(&opts.signature, "signature", "", "the sidecar's signature (default SIDECAR.sig)")
	cmd.Flags().StringVar(&opts.expectRootHash, "expect-root-hash", "", "dm-verity root hash (hex) the image must have")
	addProgressFlag(cmd, &opts.progress)
	return cmd
}

// trust turns the options into what verify.Against checks; nil when none
// was asked for.
func (o verifyOptions) trust(ctx context.Context, img string) (*verify.Trust, error) {
	if o.key == "" && o.sidecar == "" && o.expectRootHash == "" {
		if o.signature != "" {
			return nil, usageError{errors.New("verify: --signature needs --key")}
		}
		// The sidecar beside an image file is what CI published: check
		// the image against it too, not only against the manifest the
		// image carries about itself, which whoever rewrote the image
		// could have rewritten as well.
		if fi, err := os.Stat(img + image.SidecarSuffix); err == nil && fi.Mode().IsRegular() {
			trace.Notef(ctx, "%s: found the sidecar %s: checking the image against it", img, img+image.SidecarSuffix)
			return &verify.Trust{Sidecar: img + image.SidecarSuffix}, nil
		}
		trace.Notef(ctx, "%s: no sidecar %s: checking the image against the manifest it carries only", img, img+image.SidecarSuffix)
		return nil, nil
	}
	t := &verify.Trust{Sidecar: o.sidecar, Signature: o.signature, ExpectRootHash: strings.ToLower(o.expectRootHash)}
	if h := t.ExpectRootHash; h != "" {
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			return nil, usageError{fmt.Errorf("verify: --expect-root-hash %q: want 64 hex digits (a sha256)", o.expectRootHash)}
		}
	}
	if o.key != "" {
		k, err := readPublicKey(o.key)
		if err != nil {
			return nil, err
		}
		t.Key = k
		if t.Sidecar == "" {
			t.Sidecar = img + image.SidecarSuffix
		}
	}
	if t.Sidecar != "" {
		trace.Notef(ctx, "%s: checking the image against the sidecar %s", img, t.Sidecar)
	}
	return t, nil
}

// readPublicKey reads an SSH public key in authorized_keys form (a .pub
// file).
func readPublicKey(path string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, hintError{fmt.Errorf("%s: not an SSH public key: %w", path, err), "give the .pub file of the key that signed (ssh-keygen -y -f KEY > KEY.pub)"}
	}
	return k, nil
}

func runVerify(e *env, opts verifyOptions, img string, out io.Writer) error {
	trust, err := opts.trust(e.ctx, img)
	if err != nil {
		return err
	}
	ctx, stop := newProgress(e.stderr, opts.progress && !opts.json && !e.quiet).reads(e.ctx)
	defer stop()
	var first []verify.Finding
	if trust != nil {
		var stopped bool
		if first, stopped, err = verify.Against(ctx, img, *trust); err != nil {
			return err
		}
		if stopped {
			// Without a sidecar that verifies, there is nothing to
			// check the image against.
			stop()
			return printVerify(out, opts, &verify.Report{Image: img, Findings: first}, img, true)
		}
	}
	src, err := operand.OpenImage(ctx, img, operand.NoTree)
	if err != nil {
		return err
	}
	defer src.Close()
	rep, err := verify.Image(ctx, src)
	if err != nil {
		return err
	}
	stop()
	rep.Findings = append(first, rep.Findings...)
	return printVerify(out, opts, rep, img, false)
}

// printVerify prints the report; stopped says the sidecar or its
// signature failed and the image was not checked.
func printVerify(out io.Writer, opts verifyOptions, rep *verify.Report, img string, stopped bool) error {
	if rep.Findings == nil {
		rep.Findings = []verify.Finding{}
	}
	if opts.json {
		if err := writeJSON(out, struct {
			Schema string `json:"schema"`
			*verify.Report
		}{"olimage.verify/v1", rep}); err != nil {
			return err
		}
	} else {
		for _, f := range rep.Findings {
			fmt.Fprintln(out, f)
		}
		status := "ok"
		if len(rep.Findings) > 0 {
			status = fmt.Sprintf("%d finding(s)", len(rep.Findings))
		}
		if stopped {
			fmt.Fprintf(out, "%s: %s: refused before the image was read\n", img, status)
		} else {
			fmt.Fprintf(out, "%s: %s: %d entries and %s of content checked against the manifest\n", img, status, rep.Entries, mib(rep.Bytes))
		}
	}
	if len(rep.Findings) > 0 {
		return errFindings
	}
	return nil
}
