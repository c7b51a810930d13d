package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
)

// debugfsNumbers runs a debugfs request on img and returns the numbers in
// its answer.
func debugfsNumbers(t *testing.T, img, req string) []int64 {
	t.Helper()
	tool := testenv.Tool(t, "debugfs")
	out, err := exec.Command(tool, "-R", req, img).Output()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v", req, err)
	}
	var nums []int64
	for _, m := range regexp.MustCompile(`0x[0-9a-f]+|\d+`).FindAllString(string(out), -1) {
		n, _ := strconv.ParseInt(m, 0, 64)
		nums = append(nums, n)
	}
	if len(nums) == 0 {
		t.Fatalf("debugfs -R %q: no numbers in %q", req, out)
	}
	return nums
}

// copyImage copies img, keeping it sparse.
func copyImage(t *testing.T, img string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "corrupt.img")
	if out, err := exec.Command("cp", "--sparse=always", img, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return dst
}

// flip copies img and inverts one byte of the copy.
func flip(t *testing.T, img string, off int64) string {
	t.Helper()
	dst := copyImage(t, img)
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xff
	f.WriteAt(b, off)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestVerifyFindsCorruption(t *testing.T) {
	img := release(t, "a", nil)
	const bs = 4096
	fileBlock := debugfsNumbers(t, img, "bmap /opt/openlibrary/README 0")[0]
	imap := debugfsNumbers(t, img, "imap /opt/openlibrary/README") // inode, group, block, offset
	ino, inodeOff := imap[0], imap[2]*bs+imap[3]
	dirBlock := debugfsNumbers(t, img, "bmap /etc/nginx 0")[0]

	cases := []struct {
		name string
		off  int64
		want string // a finding line must match
	}{
		{"file data", fileBlock*bs + 10, `^opt/openlibrary/README: content differs from the manifest's sha256`},
		{"inode", inodeOff + 0x20, `^inode ` + strconv.FormatInt(ino, 10) + `\b.*checksum`},
		{"directory block", dirBlock*bs + 30, `(?m)^directory inode \d+ block \d+.*checksum|^inode \d+.*directory.*checksum`},
		{"superblock", 1024 + 0x78, `superblock.*checksum`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := flip(t, img, tc.off)
			out, errOut, code := olimage(t, "verify", bad)
			all := out + errOut
			if code == 0 {
				t.Fatalf("verify passed a corrupt image:\n%s", all)
			}
			if !regexp.MustCompile("(?m)" + tc.want).MatchString(strings.ReplaceAll(all, "olimage: error: "+bad+": ", "")) {
				t.Errorf("verify (exit %d) does not report %q:\n%s", code, tc.want, all)
			}
		})
	}
	if out, e, code := olimage(t, "verify", img); code != 0 {
		t.Errorf("verify of the intact image: exit %d\n%s%s", code, out, e)
	}
}

// TestVerifyHostileClaims gives verify an inode that claims 2^34 bytes
// (of holes) where the manifest says a few hundred, and a manifest of a
// schema version this olimage does not know: each is a finding, and the
// claimed bytes are not hashed to find the first.
func TestVerifyHostileClaims(t *testing.T) {
	img := release(t, "a", nil)
	t.Run("size", func(t *testing.T) {
		tool := testenv.Tool(t, "debugfs")
		bad := copyImage(t, img)
		const claim = 1 << 34
		if out, err := exec.Command(tool, "-w", "-R", "sif /opt/openlibrary/README size "+strconv.Itoa(claim), bad).CombinedOutput(); err != nil {
			t.Fatalf("debugfs: %v\n%s", err, out)
		}
		out, e, code := olimage(t, "verify", bad)
		if code != 1 || !regexp.MustCompile(`(?m)^opt/openlibrary/README: size 17179869184, manifest says \d+$`).MatchString(out) {
			t.Errorf("verify of an inode claiming %d bytes: exit %d, want 1 and the sizes reported\n%s%s", claim, code, out, e)
		}
	})
	t.Run("schema", func(t *testing.T) {
		// The manifest starts with its schema, in its first block.
		bad := copyImage(t, img)
		off := debugfsNumbers(t, bad, "bmap /.olimage/manifest.json 0")[0] * 4096
		f, err := os.OpenFile(bad, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 4096)
		f.ReadAt(head, off)
		const v1 = `"schema": "olimage.manifest/v1"`
		i := strings.Index(string(head), v1)
		if i < 0 {
			t.Fatalf("no manifest schema in the manifest's first block:\n%s", head)
		}
		f.WriteAt([]byte("9"), off+int64(i+len(v1)-2))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		out, e, code := olimage(t, "verify", bad)
		if code != 1 || !strings.Contains(out, `.olimage/manifest.json: schema "olimage.manifest/v9": this olimage verifies olimage.manifest/v1 only`) {
			t.Errorf("verify of a manifest of schema v9: exit %d, want 1 and the schema reported\n%s%s", code, out, e)
		}
	})
}

// TestVerifySidecarBeside verifies an image whose sidecar describes another
// image: the manifest inside agrees with the image, the sidecar CI
// published does not, and verify says so without being asked.
func TestVerifySidecarBeside(t *testing.T) {
	a := release(t, "a", nil)
	b := release(t, "b", func(fleet string) {
		testfs.WriteFiles(t, fleet, map[string]string{"sources/openlibrary/CHANGED": "b\n"})
	})
	mustRun(t, "verify", a)
	data, err := os.ReadFile(b + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a+".manifest.json", data, 0o644); err != nil {
		t.Fatal(err)
	}
	o, e, code := olimage(t, "verify", a)
	if code != 1 || !strings.Contains(o, "dm-verity: root hash") {
		t.Errorf("verify of an image beside another image's sidecar: exit %d, want 1 and the root hash named\n%s%s", code, o, e)
	}
}
