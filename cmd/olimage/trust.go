package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/verify"
)

// signedVolume is activate's --key: before anything changes, the
// sidecar's signature, then the volume's device against the sidecar's
// dm-verity root hash and tree, then the mounted volume's manifest
// against the sidecar's.
type signedVolume struct {
	key, sidecar, signature, device string
}

func (s *signedVolume) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.key, "key", "", "SSH public key that must have signed --sidecar; checked, with the volume's device, before anything changes")
	cmd.Flags().StringVar(&s.sidecar, "sidecar", "", "the image's sidecar, as CI built and signed it (with --key)")
	cmd.Flags().StringVar(&s.signature, "signature", "", "the sidecar's signature (default SIDECAR.sig)")
	cmd.Flags().StringVar(&s.device, "device", "", "the volume's device or image file (default: what is mounted at the volume)")
	cmd.Long += `

With --key PUB --sidecar FILE, activate first checks that FILE carries a
signature by PUB (FILE.sig, as 'olimage sign' writes it), then reads the
volume's device (what is mounted at --volume, or --device) and checks its
dm-verity root hash and tree against the signed sidecar, and the mounted
volume's manifest against the sidecar's. Any failure is printed, one line
each, and activate exits 1 having changed nothing. This reads the whole
device; a volume opened through dm-verity is checked by the kernel as it
is read instead ('olimage veritytab').`
}

func (s *signedVolume) check(e *env, root, volume string, out io.Writer) error {
	if s.key == "" {
		if s.sidecar != "" || s.signature != "" || s.device != "" {
			return usageError{errors.New("activate: --sidecar, --signature and --device go with --key")}
		}
		return nil
	}
	if s.sidecar == "" {
		return usageError{errors.New("activate: --key needs --sidecar FILE, the sidecar CI signed")}
	}
	k, err := readPublicKey(s.key)
	if err != nil {
		return err
	}
	vol := filepath.Join(root, volume)
	dev := s.device
	if dev == "" {
		if dev, err = mountSource(vol); err != nil {
			return hintError{err, "mount the volume first, or name its device with --device"}
		}
	}
	findings, stopped, err := verify.Against(e.ctx, dev, verify.Trust{Sidecar: s.sidecar, Key: k, Signature: s.signature})
	if err != nil {
		return err
	}
	if !stopped {
		findings = append(findings, sameManifest(vol, s.sidecar)...)
	}
	if len(findings) == 0 {
		return nil
	}
	for _, f := range findings {
		fmt.Fprintln(out, f)
	}
	fmt.Fprintf(out, "activate: refused: %s does not match the sidecar %s signed by %s; nothing changed\n", dev, s.sidecar, s.key)
	return errFindings
}

// sameManifest checks that the volume mounted at vol carries the manifest
// the sidecar embeds: the same role, UUID and tree.
func sameManifest(vol, sidecar string) []verify.Finding {
	where := filepath.Join(vol, manifest.Path)
	mine, err := os.ReadFile(where)
	if err != nil {
		return []verify.Finding{{Where: where, Msg: fmt.Sprintf("cannot read the volume's manifest: %v", err)}}
	}
	side, err := os.ReadFile(sidecar)
	if err != nil {
		return []verify.Finding{{Where: sidecar, Msg: err.Error()}}
	}
	_, a, _, errA := manifest.Head(mine)
	_, b, _, errB := manifest.Head(side)
	switch {
	case errA != nil:
		return []verify.Finding{{Where: where, Msg: errA.Error()}}
	case errB != nil:
		return []verify.Finding{{Where: sidecar, Msg: errB.Error()}}
	case a.Role != b.Role || a.UUID != b.UUID || a.TreeDigest != b.TreeDigest:
		return []verify.Finding{{Where: where, Msg: fmt.Sprintf("role %s, uuid %s, tree %s; the signed sidecar says role %s, uuid %s, tree %s",
			a.Role, a.UUID, short(a.TreeDigest), b.Role, b.UUID, short(b.TreeDigest))}}
	}
	return nil
}

// mountSource returns the device mounted at dir, from /proc/self/mountinfo.
func mountSource(dir string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	src := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		if unescapeMount(fields[4]) == dir {
			src = unescapeMount(fields[sep+2]) // the last mount at dir is the one seen
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if src == "" || !strings.HasPrefix(src, "/") {
		return "", fmt.Errorf("volume %s: no device is mounted there", dir)
	}
	return src, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
