package verify_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testimage"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/verify"
)

var files = map[string]string{
	"opt/app/main.py":  "print('hello')\n",
	"opt/app/data.txt": strings.Repeat("data\n", 3000),
	"etc/app/app.conf": "port = 8080\n",
}

func verifyImage(t *testing.T, img string) *verify.Report {
	t.Helper()
	s, err := operand.OpenImage(context.Background(), img, operand.NoTree)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := verify.Image(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// writeAt overwrites the image's bytes at off, as a bad disk or an
// attacker would, behind the file system's back.
func writeAt(t *testing.T, img string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// contentAt returns where path's content lies in the image.
func contentAt(t *testing.T, img, path string) (off, n int64) {
	t.Helper()
	s, err := operand.OpenImage(context.Background(), img, operand.NoTree)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	off, n, ok, err := s.FS().Contiguous(path)
	if err != nil || !ok {
		t.Fatalf("%s: not in one run of blocks (%v)", path, err)
	}
	return off, n
}

// debugfsW changes the image with debugfs -w, which keeps the file
// system's checksums right: only the manifest can tell.
func debugfsW(t *testing.T, img, req string) {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "debugfs"), "-w", "-R", req, img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs -w -R %q: %v\n%s", req, err, out)
	}
}

func findings(rep *verify.Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// A built image verifies clean: every entry checked, every byte hashed.
func TestImageClean(t *testing.T) {
	res := testimage.Build(t, testimage.Fleet(t, files), builder.Options{})
	rep := verifyImage(t, res.Image)
	if len(rep.Findings) != 0 {
		t.Fatalf("findings on a fresh image:\n%s", findings(rep))
	}
	var content int64
	for _, c := range files {
		content += int64(len(c))
	}
	const entries = 7 // the three files and opt, opt/app, etc, etc/app
	if rep.Role != testimage.Role || rep.Entries != entries || rep.Bytes != content {
		t.Errorf("role %q, %d entries, %d bytes; want %q, %d, %d", rep.Role, rep.Entries, rep.Bytes, testimage.Role, entries, content)
	}
}

// Each way an image can stop matching its manifest is a finding naming
// the path or structure and what is wrong.
func TestImageTampered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, img string)
		want   []string // each in some finding
	}{
		{"content, same size", func(t *testing.T, img string) {
			off, _ := contentAt(t, img, "opt/app/main.py")
			writeAt(t, img, off, []byte("PRINT"))
		}, []string{`opt/app/main.py: content differs from the manifest's sha256`}},
		{"mode", func(t *testing.T, img string) {
			debugfsW(t, img, "sif /etc/app/app.conf mode 0100600")
		}, []string{"etc/app/app.conf: mode 0600, manifest says 0644"}},
		{"owner", func(t *testing.T, img string) {
			debugfsW(t, img, "sif /opt/app/main.py uid 7")
		}, []string{"opt/app/main.py: owner 7:0, manifest says 0:0"}},
		{"size", func(t *testing.T, img string) {
			debugfsW(t, img, "sif /opt/app/data.txt size 100")
		}, []string{"opt/app/data.txt: size 100, manifest says 15000"}},
		{"file removed", func(t *testing.T, img string) {
			debugfsW(t, img, "rm /etc/app/app.conf")
		}, []string{"etc/app/app.conf: in the manifest, missing from the image"}},
		{"file added", func(t *testing.T, img string) {
			debugfsW(t, img, "mkdir /opt/extra")
		}, []string{"opt/extra: in the image, not in the manifest"}},
		{"manifest removed", func(t *testing.T, img string) {
			debugfsW(t, img, "rm /"+manifest.Path)
		}, []string{manifest.Path + ": cannot read the manifest"}},
		{"manifest's digest of a file", func(t *testing.T, img string) {
			off, n := contentAt(t, img, manifest.Path)
			b := make([]byte, n)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			// The sha256 of app.conf's entry, changed in its first digit.
			m := string(b)
			i := strings.Index(m, `"entries": [`)
			j := strings.Index(m[max(i, 0):], `"path": "etc/app/app.conf"`)
			k := strings.Index(m[max(i+j, 0):], `"sha256": "`)
			if i < 0 || j < 0 || k < 0 {
				t.Fatalf("no sha256 for app.conf's entry in the manifest:\n%s", b)
			}
			at := int64(i + j + k + len(`"sha256": "`))
			c := byte('0')
			if b[at] == '0' {
				c = '1'
			}
			writeAt(t, img, off+at, []byte{c})
		}, []string{"tree digest", "etc/app/app.conf: content differs from the manifest's sha256"}},
		{"ext4 checksum", func(t *testing.T, img string) {
			// The superblock's last four bytes are its checksum.
			writeAt(t, img, 1024+1020, []byte{0xde, 0xad})
		}, []string{"superblock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := testimage.Build(t, testimage.Fleet(t, files), builder.Options{})
			tc.tamper(t, res.Image)
			got := findings(verifyImage(t, res.Image))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("no finding says %q; got:\n%s", w, got)
				}
			}
		})
	}
}

// Verification stops when its context is done.
func TestImageCanceled(t *testing.T) {
	res := testimage.Build(t, testimage.Fleet(t, files), builder.Options{})
	s, err := operand.OpenImage(context.Background(), res.Image, operand.NoTree)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := verify.Image(ctx, s); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
