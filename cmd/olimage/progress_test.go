package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadProgressPlain checks that the commands that read whole images
// (verify, extract, diff reading both images, and the decompression of a
// compressed one) print progress as plain lines naming the image when
// stderr is not a terminal, and none with -q.
func TestReadProgressPlain(t *testing.T) {
	old := plainEvery
	plainEvery = 0 // every read, so that a small image shows some
	t.Cleanup(func() { plainEvery = old })
	a, b := filepath.Join(t.TempDir(), "a.img"), filepath.Join(t.TempDir(), "b.img")
	z := filepath.Join(t.TempDir(), "z.img.zst")
	for img, content := range map[string]string{a: strings.Repeat("a", 1<<20), b: strings.Repeat("b", 1<<20), z: strings.Repeat("z", 1<<20)} {
		mustRun(t, "-f", tinyFleet(t, t.TempDir(), content), "build", "r", "-q", "-o", img)
	}
	cases := []struct {
		args []string
		code int
		want string // an image whose reading is shown
	}{
		{[]string{"verify", a}, 0, a},
		{[]string{"extract", a, filepath.Join(t.TempDir(), "x")}, 0, a},
		{[]string{"diff", "--no-manifests", a, b}, 1, b},
		// A compressed image is decompressed first, reading all of it.
		{[]string{"extract", z, filepath.Join(t.TempDir(), "z")}, 0, z + " (decompressing)"},
	}
	for _, c := range cases {
		_, stderr, code := olimage(t, c.args...)
		line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(c.want) + ` +\d+% of [0-9.]+ (MiB|KiB)`)
		if code != c.code || !line.MatchString(stderr) || strings.Contains(stderr, "\r") {
			t.Errorf("%s: exit %d (want %d), want plain progress lines for %s, got:\n%.500q", c.args[0], code, c.code, c.want, stderr)
		}
		if c.args[0] == "extract" {
			c.args[2] += "-q"
		}
		if _, stderr, code := olimage(t, append([]string{"-q"}, c.args...)...); code != c.code || stderr != "" {
			t.Errorf("-q %s: exit %d, stderr %q, want none", c.args[0], code, stderr)
		}
	}
}
