package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/image"
)

// sshKeygen makes an ed25519 key pair and returns the private key's path
// (the public key is beside it, .pub).
func sshKeygen(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		skip(t, "ssh-keygen not installed (Debian: openssh-client)")
	}
	p := filepath.Join(t.TempDir(), "ci")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return p
}

// signedImage builds fleet's role r with --verity into dir and signs its
// sidecar with key.
func signedImage(t *testing.T, fleet, dir, key string) string {
	t.Helper()
	img := filepath.Join(dir, "r.img")
	if _, e, code := olimage(t, "-f", fleet, "build", "r", "--verity", "-o", img); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, e)
	}
	if o, e, code := olimage(t, "sign", img, "--key", key); code != 0 || !strings.Contains(o, "SHA256:") {
		t.Fatalf("sign: exit %d\n%s%s", code, o, e)
	}
	return img
}

// TestSignatureCheckedBySSHKeygen: ssh-keygen -Y verify accepts the
// signature olimage sign writes, and verify --key accepts the image.
func TestSignatureCheckedBySSHKeygen(t *testing.T) {
	key := sshKeygen(t)
	img := signedImage(t, tinyFleet(t, t.TempDir(), "release a\n"), t.TempDir(), key)
	side := img + image.SidecarSuffix
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	os.WriteFile(allowed, append([]byte("ci "), pub...), 0o644)
	sidecar, _ := os.ReadFile(side)
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "ci", "-n", "olimage", "-s", side+".sig")
	cmd.Stdin = bytes.NewReader(sidecar)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	if o, e, code := olimage(t, "verify", img, "--key", key+".pub"); code != 0 {
		t.Fatalf("verify --key: exit %d\n%s%s", code, o, e)
	}
}

// flipMatch changes one byte of file at the first match of what (plus skip).
func flipMatch(t *testing.T, file string, what []byte, skip int) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, what)
	if i < 0 || bytes.Contains(data[i+1:], what) {
		t.Fatalf("%q is not once in %s", what, file)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{data[i+skip] ^ 0x20}, int64(i+skip)); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyRefusesTampering: each way of changing a signed image, its
// sidecar or signature is refused by verify --key, exit 1, naming what
// failed.
func TestVerifyRefusesTampering(t *testing.T) {
	key := sshKeygen(t)
	other := sshKeygen(t)
	fleetA := tinyFleet(t, t.TempDir(), "release a\n")
	fleetB := tinyFleet(t, t.TempDir(), "release b\n")
	cases := []struct {
		name   string
		tamper func(t *testing.T, img string)
		args   []string
		want   []string
	}{
		{"one byte of file data", func(t *testing.T, img string) {
			flipMatch(t, img, []byte("release a\n"), 3)
		}, nil, []string{"dm-verity: root hash of the data is", "opt/app/data: content differs"}},
		{"a directory block", func(t *testing.T, img string) {
			// A directory entry: name length 4, type 1 (file), "data".
			flipMatch(t, img, []byte("\x04\x01data"), 2)
		}, nil, []string{"dm-verity: root hash of the data is"}},
		{"image, manifest and sidecar rewritten together", func(t *testing.T, img string) {
			dir := t.TempDir()
			b := filepath.Join(dir, "r.img")
			if _, e, code := olimage(t, "-f", fleetB, "build", "r", "--verity", "-o", b); code != 0 {
				t.Fatal(e)
			}
			for _, s := range []string{"", image.SidecarSuffix} {
				data, _ := os.ReadFile(b + s)
				os.WriteFile(img+s, data, 0o644)
			}
		}, nil, []string{".sig: signature by", "is not over this content", "refused before the image was read"}},
		{"wrong key", func(t *testing.T, img string) {}, []string{"--key", other + ".pub"}, []string{"not by the given key"}},
		{"signature over another sidecar", func(t *testing.T, img string) {
			b := signedImage(t, fleetB, t.TempDir(), key)
			sig, _ := os.ReadFile(b + image.SidecarSuffix + ".sig")
			os.WriteFile(img+image.SidecarSuffix+".sig", sig, 0o644)
		}, nil, []string{"is not over this content"}},
		{"no signature", func(t *testing.T, img string) {
			os.Remove(img + image.SidecarSuffix + ".sig")
		}, nil, []string{".sig: cannot read the signature: no such file"}},
		{"truncated hash tree", func(t *testing.T, img string) {
			fi, _ := os.Stat(img)
			os.Truncate(img, fi.Size()-4096)
		}, nil, []string{"dm-verity: hash tree at byte", "truncated"}},
		{"flipped hash block", func(t *testing.T, img string) {
			fi, _ := os.Stat(img)
			f, _ := os.OpenFile(img, os.O_RDWR, 0)
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, fi.Size()-4096+5)
			f.WriteAt([]byte{b[0] ^ 1}, fi.Size()-4096+5)
		}, nil, []string{"dm-verity: hash block", "differs from the one the data gives"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := signedImage(t, fleetA, t.TempDir(), key)
			c.tamper(t, img)
			args := c.args
			if args == nil {
				args = []string{"--key", key + ".pub"}
			}
			o, e, code := olimage(t, append([]string{"verify", img}, args...)...)
			if code != 1 {
				t.Fatalf("verify: exit %d, want 1\n%s%s", code, o, e)
			}
			for _, w := range c.want {
				if !strings.Contains(o, w) {
					t.Errorf("verify output does not say %q:\n%s", w, o)
				}
			}
		})
	}
}

// TestVerifyExpectRootHash: the root hash from the build's output is
// checked with the salt from the sidecar, or, without one, from the
// tree's superblock.
func TestVerifyExpectRootHash(t *testing.T) {
	fleet := tinyFleet(t, t.TempDir(), "release a\n")
	img := filepath.Join(t.TempDir(), "r.img")
	o, e, code := olimage(t, "-f", fleet, "build", "r", "--verity", "-o", img, "--json")
	if code != 0 {
		t.Fatal(e)
	}
	i := strings.Index(o, `"root_hash": "`)
	root := o[i+14 : i+14+64]
	wrong := strings.Repeat("0", 64)
	noTree := filepath.Join(t.TempDir(), "plain.img")
	if _, e, code := olimage(t, "-f", fleet, "build", "r", "-o", noTree); code != 0 {
		t.Fatal(e)
	}
	os.Rename(noTree+image.SidecarSuffix, noTree+".kept")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"right, salt from the sidecar", []string{img, "--sidecar", img + image.SidecarSuffix, "--expect-root-hash", root}, 0, ": ok:"},
		{"right, salt from the superblock", []string{img, "--expect-root-hash", root}, 0, ": ok:"},
		{"wrong", []string{img, "--expect-root-hash", wrong}, 1, "expected " + wrong},
		{"wrong, with the sidecar", []string{img, "--sidecar", img + image.SidecarSuffix, "--expect-root-hash", wrong}, 1, "expected " + wrong},
		{"another image's sidecar", []string{noTree, "--sidecar", img + image.SidecarSuffix}, 1, "dm-verity"},
		{"right, no tree, its sidecar", []string{noTree, "--sidecar", noTree + ".kept", "--expect-root-hash", root}, 0, ": ok:"},
		{"no tree, no sidecar", []string{noTree, "--expect-root-hash", root}, 1, "no salt to compute the root hash with"},
		{"not a hash", []string{img, "--expect-root-hash", "xyz"}, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, e, code := olimage(t, append([]string{"verify"}, c.args...)...)
			if code != c.code || !strings.Contains(o+e, c.want) {
				t.Errorf("exit %d, want %d saying %q\n%s%s", code, c.code, c.want, o, e)
			}
		})
	}
}
