package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// sshKeygen makes an ed25519 key pair and returns the private key's path
// (the public key is beside it, .pub).
func sshKeygen(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		testenv.Skip(t, "ssh-keygen not installed (Debian: openssh-client)")
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
	mustRun(t, "-f", fleet, "build", "r", "--verity", "-o", img)
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
	mustRun(t, "verify", img, "--key", key+".pub")
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
			mustRun(t, "-f", fleetB, "build", "r", "--verity", "-o", b)
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
	mustRun(t, "-f", fleet, "build", "r", "-o", noTree)
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

// volume extracts img into dir as a mounted volume shows it, manifest
// included.
func volume(t *testing.T, img, dir string) {
	t.Helper()
	mustRun(t, "extract", img, dir)
	m, e, code := olimage(t, "cat", img, manifest.Path)
	if code != 0 {
		t.Fatal(e)
	}
	os.MkdirAll(filepath.Join(dir, tree.OlimageDir), 0o755)
	if err := os.WriteFile(filepath.Join(dir, manifest.Path), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestActivateKey: activate --key checks the signature, the device and
// the mounted volume's manifest before anything changes; each failure
// exits 1 with nothing activated.
func TestActivateKey(t *testing.T) {
	key := sshKeygen(t)
	other := sshKeygen(t)
	fleetA := tinyFleet(t, t.TempDir(), "release a\n")
	fleetB := tinyFleet(t, t.TempDir(), "release b\n")
	cases := []struct {
		name   string
		tamper func(t *testing.T, img, vol string) // vol: the volume's directory
		key    string
		code   int
		want   string
	}{
		{"signed and unchanged", func(*testing.T, string, string) {}, key, 0, "link"},
		{"wrong key", func(*testing.T, string, string) {}, other, 1, "not by the given key"},
		{"one byte of the device", func(t *testing.T, img, _ string) {
			flipMatch(t, img, []byte("release a\n"), 0)
		}, key, 1, "dm-verity: root hash of the data is"},
		{"another image mounted", func(t *testing.T, _, vol string) {
			os.RemoveAll(vol)
			volume(t, signedImage(t, fleetB, t.TempDir(), key), vol)
		}, key, 1, "the signed sidecar says role r"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := signedImage(t, fleetA, t.TempDir(), key)
			root := t.TempDir()
			vol := filepath.Join(root, "1")
			volume(t, img, vol)
			c.tamper(t, img, vol)
			o, e, code := olimage(t, "activate", "--root", root, "--force-accounts", "--key", c.key+".pub", "--sidecar", img+image.SidecarSuffix, "--device", img)
			if code != c.code || !strings.Contains(o, c.want) {
				t.Fatalf("activate --key: exit %d, want %d saying %q\n%s%s", code, c.code, c.want, o, e)
			}
			_, err := os.Lstat(filepath.Join(root, "opt/app"))
			if activated := err == nil; activated != (c.code == 0) {
				t.Errorf("exit %d, yet opt/app linked: %v", code, activated)
			}
		})
	}
	o, e, code := olimage(t, "activate", "--root", t.TempDir(), "--key", key+".pub")
	if code != 2 || !strings.Contains(e, "--key needs --sidecar") {
		t.Errorf("activate --key without --sidecar: exit %d\n%s%s", code, o, e)
	}
}

// TestActivateKeyMounted: without --device, activate --key reads the
// device the volume is mounted from.
func TestActivateKeyMounted(t *testing.T) {
	testenv.RequireRoot(t, "a loop mount")
	key := sshKeygen(t)
	img := signedImage(t, tinyFleet(t, t.TempDir(), "release a\n"), t.TempDir(), key)
	root := t.TempDir()
	vol := filepath.Join(root, "1")
	os.MkdirAll(vol, 0o755)
	testenv.MountLoop(t, img, vol, "ro")
	dev, err := mountSource(vol)
	if err != nil || !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("mountSource: %q, %v; want a loop device", dev, err)
	}
	o, e, code := olimage(t, "activate", "--root", root, "--force-accounts", "--key", key+".pub", "--sidecar", img+image.SidecarSuffix)
	if code != 0 {
		t.Fatalf("activate --key: exit %d\n%s%s", code, o, e)
	}
	mustRun(t, "deactivate", "--root", root)
}

// TestVeritytab: the unit's veritysetup open command, run as veritysetup
// verify, accepts the image and refuses it with a byte flipped; the
// veritytab and fstab lines name the same device and root hash.
func TestVeritytab(t *testing.T) {
	vs, err := exec.LookPath("veritysetup")
	if err != nil {
		testenv.Skip(t, "veritysetup not installed (Debian: cryptsetup-bin)")
	}
	key := sshKeygen(t)
	img := signedImage(t, tinyFleet(t, t.TempDir(), "release a\n"), t.TempDir(), key)
	side := img + image.SidecarSuffix
	unit, e, code := olimage(t, "veritytab", img, "--sidecar", side, "--key", key+".pub", "--unit")
	if code != 0 {
		t.Fatalf("veritytab --unit: exit %d\n%s", code, e)
	}
	var open []string
	for _, l := range strings.Split(unit, "\n") {
		if rest, ok := strings.CutPrefix(l, "ExecStart=/usr/sbin/veritysetup open "); ok {
			open = strings.Fields(rest) // DATA NAME HASH ROOT --hash-offset=N
		}
	}
	if len(open) != 5 || open[0] != img || open[1] != "olimage-r" || open[2] != img || !strings.Contains(unit, "RequiredBy=1.mount") {
		t.Fatalf("unexpected unit:\n%s", unit)
	}
	verifyCmd := func() error {
		return exec.Command(vs, "verify", open[0], open[2], open[3], open[4]).Run()
	}
	if err := verifyCmd(); err != nil {
		t.Fatalf("veritysetup verify with the unit's arguments: %v\n%s", err, unit)
	}
	line, _, code := olimage(t, "veritytab", img, "--sidecar", side)
	if want := strings.Join([]string{"olimage-r", img, img, open[3], strings.TrimPrefix(open[4], "--")}, " ") + "\n"; code != 0 || line != want {
		t.Errorf("veritytab: exit %d, %q, want %q", code, line, want)
	}
	// No fsck pass: fsck cannot open the read-only dm-verity device.
	fstab, _, _ := olimage(t, "veritytab", img, "--sidecar", side, "--fstab")
	if want := "/dev/mapper/olimage-r /1 ext4 ro,nodev,x-systemd.requires=olimage-verity.service,x-systemd.before=olimage-activate.service 0 0\n"; fstab != want {
		t.Errorf("veritytab --fstab: %q, want %q", fstab, want)
	}
	testVeritytabWrite(t, img, side, unit, fstab)
	other := sshKeygen(t)
	if o, _, code := olimage(t, "veritytab", img, "--sidecar", side, "--key", other+".pub"); code != 1 || !strings.Contains(o, "not by the given key") {
		t.Errorf("veritytab with the wrong key: exit %d\n%s", code, o)
	}
	flipMatch(t, img, []byte("release a\n"), 0)
	if err := verifyCmd(); err == nil {
		t.Errorf("veritysetup verify accepted the image with a byte flipped")
	}
	plain := filepath.Join(t.TempDir(), "p.img")
	olimage(t, "-f", tinyFleet(t, t.TempDir(), "x\n"), "build", "r", "-o", plain)
	if _, e, code := olimage(t, "veritytab", plain, "--sidecar", plain+image.SidecarSuffix); code != 2 || !strings.Contains(e, "build --verity") {
		t.Errorf("veritytab of an image without a tree: exit %d\n%s", code, e)
	}
}

// testVeritytabWrite: veritytab --write installs the unit --unit prints,
// enabled as systemctl enable does for RequiredBy=1.mount, and makes the
// line --fstab prints /etc/fstab's one /1 entry, keeping the others; run
// again, it changes nothing.
func testVeritytabWrite(t *testing.T, img, side, unit, fstab string) {
	t.Helper()
	root := t.TempDir()
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	other := "LABEL=e2eroot / ext4 rw 0 1\n"
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/fstab"), []byte(other+"LABEL=r /1 ext4 ro,nodev 0 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"veritytab", img, "--sidecar", side, "--write", "--root", root}
	o, e, code := olimage(t, args...)
	want := "wrote /etc/systemd/system/olimage-verity.service\n" +
		"wrote /etc/systemd/system/1.mount.requires/olimage-verity.service\n" +
		"etc/fstab: replaced " + fstab
	if code != 0 || o != want {
		t.Fatalf("veritytab --write: exit %d\n%s%s\nwant:\n%s", code, o, e, want)
	}
	if got := read("etc/systemd/system/olimage-verity.service"); got != unit {
		t.Errorf("the installed unit differs from --unit's:\n%s\nwant:\n%s", got, unit)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/1.mount.requires/olimage-verity.service")); err != nil || l != "/etc/systemd/system/olimage-verity.service" {
		t.Errorf("1.mount.requires/olimage-verity.service: %q, %v", l, err)
	}
	if got := read("etc/fstab"); got != other+fstab {
		t.Errorf("etc/fstab:\n%s\nwant:\n%s", got, other+fstab)
	}
	if o, e, code := olimage(t, args...); code != 0 || o != "etc/fstab: unchanged "+fstab {
		t.Errorf("veritytab --write, again: exit %d\n%s%s", code, o, e)
	}
	if _, e, code := olimage(t, append(args, "--unit")...); code != 2 || !strings.Contains(e, "--write installs both") {
		t.Errorf("veritytab --write --unit: exit %d\n%s", code, e)
	}
}

// TestVerifyV1Sidecar: a version 1 sidecar (raw sha256, no root hash) is
// still read, and its sha256 checked.
func TestVerifyV1Sidecar(t *testing.T) {
	img := filepath.Join(t.TempDir(), "r.img")
	mustRun(t, "-f", tinyFleet(t, t.TempDir(), "release a\n"), "build", "r", "--sha256", "-o", img)
	data, err := os.ReadFile(img + image.SidecarSuffix)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	var head map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(doc["image"], &head)
	delete(head, "verity")
	imageJSON, _ := json.Marshal(head)
	// In the order olimage wrote it: schema, image, manifest.
	v1 := []byte(`{"schema": "olimage.sidecar/v1", "image": ` + string(imageJSON) + `, "manifest": ` + string(doc["manifest"]) + "}\n")
	side := filepath.Join(t.TempDir(), "v1.json")
	os.WriteFile(side, v1, 0o644)
	mustRun(t, "verify", img, "--sidecar", side)
	mustRun(t, "diff", side, img)
	flipMatch(t, img, []byte("release a\n"), 0)
	if o, _, code := olimage(t, "verify", img, "--sidecar", side); code != 1 || !strings.Contains(o, "sha256: sha256 of the image is") {
		t.Errorf("verify --sidecar v1 of a changed image: exit %d\n%s", code, o)
	}
}

// TestVerifyDataDevice: a block device holding the data alone, as the
// volume opened through dm-verity is, verifies against the sidecar of an
// image built with --verity; a file cut off at the same size does not.
func TestVerifyDataDevice(t *testing.T) {
	testenv.RequireRoot(t, "losetup")
	img := filepath.Join(t.TempDir(), "r.img")
	o, e, code := olimage(t, "-f", tinyFleet(t, t.TempDir(), "release a\n"), "build", "r", "--verity", "-o", img, "--json")
	if code != 0 {
		t.Fatal(e)
	}
	i := strings.Index(o, `"hash_offset": `)
	var end int64
	fmt.Sscan(o[i+len(`"hash_offset": `):], &end)
	data := filepath.Join(t.TempDir(), "data.img")
	raw, _ := os.ReadFile(img)
	os.WriteFile(data, raw[:end], 0o644)
	loop := testenv.Losetup(t, "--read-only", data)
	side := img + image.SidecarSuffix
	if o, e, code := olimage(t, "verify", loop, "--sidecar", side); code != 0 {
		t.Errorf("verify of the data device: exit %d\n%s%s", code, o, e)
	}
	if o, _, code := olimage(t, "verify", data, "--sidecar", side); code != 1 || !strings.Contains(o, "truncated") {
		t.Errorf("verify of the data alone as a file: exit %d, want 1 saying truncated\n%s", code, o)
	}
}
