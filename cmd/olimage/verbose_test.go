package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/internetarchive/olimage/internal/testfs"
)

// TestVerbose checks that -v says on stderr what a command read and
// wrote, every line with the same prefix, keeps stdout as it is without
// -v (so --json stays a document), and that -q with -v is a usage error.
func TestVerbose(t *testing.T) {
	fleet := tinyFleet(t, t.TempDir(), "x\n")
	img := filepath.Join(t.TempDir(), "r.img")
	cases := []struct {
		args []string
		want []string // in the notes
	}{
		{[]string{"-v", "-f", fleet, "build", "r", "--json", "-o", img},
			[]string{filepath.Join(fleet, "olimage.yaml"), "overlay s (dir " + filepath.Join(fleet, "src") + "): 3 entries, 2 bytes", "r: wrote " + img, "dm-verity root hash ", "tree digest "}},
		{[]string{"--verbose", "verify", "--json", img},
			[]string{img + ": raw ext4, file system of", "found the sidecar " + img + ".manifest.json"}},
		{[]string{"-v", "inspect", "--json", img},
			[]string{img + ": raw ext4", "dm-verity parameters from the sidecar " + img + ".manifest.json"}},
		{[]string{"-v", "diff", "--json", img, img + ".manifest.json"},
			[]string{img + ": using the manifest the image carries", img + ".manifest.json: a manifest document"}},
	}
	for _, c := range cases {
		stdout, stderr, code := olimage(t, c.args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", c.args, code, stdout, stderr)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil || doc["schema"] == nil {
			t.Errorf("%s: stdout is not a JSON document (%v):\n%.300s", c.args, err, stdout)
		}
		for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
			if !strings.HasPrefix(line, "olimage: note: ") {
				t.Errorf("%s: stderr line %q: want the prefix olimage: note:", c.args, line)
			}
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.args, w, stderr)
			}
		}
		// Without -v the same command prints no notes, and the same stdout.
		plain := append([]string{}, c.args[1:]...)
		if c.args[0] == "-v" && c.args[2] == "build" {
			plain[len(plain)-1] = filepath.Join(t.TempDir(), "r.img")
		}
		if _, stderr, _ := olimage(t, plain...); strings.Contains(stderr, "note:") {
			t.Errorf("%s: notes without -v:\n%s", plain, stderr)
		}
	}
	_, stderr, code := olimage(t, "-q", "-v", "roles")
	if code != exitError || !strings.HasPrefix(stderr, "olimage: error: ") || !strings.Contains(stderr, "olimage: hint: give one of them") {
		t.Errorf("-q -v: exit %d, want 2 and a usage error with a hint:\n%s", code, stderr)
	}
}

// TestVerboseSpool checks that -v says where the members of a compressed
// archive source are spooled.
func TestVerboseSpool(t *testing.T) {
	dir := t.TempDir()
	var zb bytes.Buffer
	zw, err := zstd.NewWriter(&zb)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte(testfs.Tar(t, map[string]string{"opt/x": "x"})))
	zw.Close()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml": "fleet: t\n",
		"roles/r.yaml": "overlays: [{name: s, tar: s.tar.zst}]\n",
		"s.tar.zst":    zb.String(),
	})
	spool := t.TempDir()
	_, stderr, code := olimage(t, "-v", "-f", dir, "--tmpdir", spool, "plan", "r")
	if want := filepath.Join(dir, "s.tar.zst") + ": spooling compressed members in " + spool; code != 0 || !strings.Contains(stderr, "olimage: note: "+want) {
		t.Errorf("plan -v: exit %d, want a note %q:\n%s", code, want, stderr)
	}
}
