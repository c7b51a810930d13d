package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The read commands give the same answers for a GPT disk and a qcow2
// image as for the raw image of the same build, but for the file name
// and format inspect names.
func TestReadDiskFormats(t *testing.T) {
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet")
	copyTree(t, exampleFleet, fleet, false, -1, time.Now())
	imgs := map[string]string{}
	for _, name := range []string{"v.img", "v.gpt.img", "v.qcow2"} {
		p := filepath.Join(dir, name)
		if out, errs, code := olimage(t, "-f", fleet, "build", "ol-web", "-o", p); code != 0 {
			t.Fatalf("build %s: exit %d\n%s%s", name, code, out, errs)
		}
		imgs[name] = p
	}
	raw := imgs["v.img"]
	run := func(img string, args ...string) string {
		t.Helper()
		var full []string
		for _, a := range args {
			full = append(full, strings.ReplaceAll(a, "IMG", img))
		}
		out, errs, code := olimage(t, full...)
		if code != 0 {
			t.Fatalf("olimage %s: exit %d\n%s", strings.Join(full, " "), code, errs)
		}
		return strings.ReplaceAll(out, img, "IMG")
	}
	for _, name := range []string{"v.gpt.img", "v.qcow2"} {
		img := imgs[name]
		t.Run(name, func(t *testing.T) {
			for _, args := range [][]string{
				{"ls", "-R", "IMG", "etc"},
				{"cat", "IMG", "opt/openlibrary/README"},
				{"verify", "IMG"},
				{"diff", raw, "IMG"},
				{"diff", "--no-manifests", raw, "IMG"},
			} {
				if got, want := run(img, args...), run(raw, args...); got != want || got == "" && args[0] != "verify" && args[0] != "diff" {
					t.Errorf("olimage %s: got\n%s\nwant (as for the raw image)\n%s", strings.Join(args, " "), got, want)
				}
			}
			ins := run(img, "inspect", "IMG")
			want := run(raw, "inspect", "IMG")
			if cut(ins) != cut(want) {
				t.Errorf("inspect: got\n%s\nwant, but for the first line,\n%s", ins, want)
			}
			x := filepath.Join(t.TempDir(), "x")
			run(img, "extract", "IMG", x)
			y := filepath.Join(t.TempDir(), "y")
			run(raw, "extract", "IMG", y)
			if out, err := exec.Command("diff", "-r", "--no-dereference", x, y).CombinedOutput(); err != nil {
				t.Errorf("extract of %s and of the raw image differ: %v\n%s", name, err, out)
			}
		})
	}
}

// cut drops inspect's first line, which names the file and its format.
func cut(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}
