package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// debugfsNumbers runs a debugfs request on img and returns the numbers in
// its answer.
func debugfsNumbers(t *testing.T, img, req string) []int64 {
	t.Helper()
	tool, err := exec.LookPath("debugfs")
	if err != nil {
		skip(t, "debugfs not installed")
	}
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

// flip copies img, keeping it sparse, and inverts one byte of the copy.
func flip(t *testing.T, img string, off int64) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "corrupt.img")
	if out, err := exec.Command("cp", "--sparse=always", img, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
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
