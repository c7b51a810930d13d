package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
)

// build --all reads a source its roles share once (overlays.Shared) and
// writes the same bytes as building each role alone.
func TestBuildAllMatchesSingle(t *testing.T) {
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml":       "fleet: t\nowners: {app: 999}\ngroups: {app: 999}\n",
		"roles/a.yaml":       "rules:\n  - {path: opt/app/*, owner: app}\noverlays: [{name: base, dir: base}]\n",
		"roles/b.yaml":       "overlays:\n  - {name: base, dir: base}\n  - name: own\n    files:\n      - {path: opt/own, content: b}\n",
		"roles/c.yaml":       "overlays: [{name: base, dir: base}, {name: t, tar: t.tar}]\n",
		"base/opt/app/data":  "data",
		"base/opt/app/more":  "more",
		"base/etc/app.conf":  "conf",
		"base/opt/lib/x.txt": "x",
	})
	// t.tar: a plain archive of the base's opt/lib.
	if o, err := exec.Command("tar", "-C", filepath.Join(dir, "base"), "-cf", filepath.Join(dir, "t.tar"), "opt/lib").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, o)
	}
	all, one := filepath.Join(dir, "all"), filepath.Join(dir, "one")
	stdout, stderr, code := olimage(t, "-f", dir, "build", "--all", "-j", "2", "--memory", "1GiB", "-o", all, "--json")
	if code != 0 {
		t.Fatalf("build --all: exit %d\n%s", code, stderr)
	}
	var doc struct {
		Images []struct {
			MemoryEstimate int64 `json:"memory_estimate"`
		} `json:"images"`
		PeakRSS int64 `json:"peak_rss"`
		Memory  int64 `json:"memory"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Images) != 3 || doc.PeakRSS <= 0 || doc.Memory != 1<<30 {
		t.Errorf("build --all --json: %d images, peak_rss %d, memory %d (%v), want 3, more than 0 and 1GiB:\n%s", len(doc.Images), doc.PeakRSS, doc.Memory, err, stdout)
	}
	for _, im := range doc.Images {
		if im.MemoryEstimate <= 0 {
			t.Errorf("build --all --json: an image with memory_estimate %d:\n%s", im.MemoryEstimate, stdout)
		}
	}
	for _, r := range []string{"a", "b", "c"} {
		if _, stderr, code := olimage(t, "-f", dir, "build", r, "-o", one); code != 0 {
			t.Fatalf("build %s: exit %d\n%s", r, code, stderr)
		}
	}
	names := testfs.Names(t, all)
	if got := testfs.Names(t, one); strings.Join(got, " ") != strings.Join(names, " ") || len(names) != 6 {
		t.Fatalf("build --all wrote %v, single builds %v", names, got)
	}
	for _, name := range names {
		x, err := os.ReadFile(filepath.Join(all, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(one, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s: build --all wrote other bytes than a single build", name)
		}
		if strings.HasSuffix(name, ".img") {
			testenv.Fsck(t, filepath.Join(all, name))
		}
	}
}

// build --all builds every role it can and reports a role whose file has
// errors as failed, by name, rather than leaving it out.
func TestBuildAllReportsBrokenRole(t *testing.T) {
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml":      "fleet: t\n",
		"roles/a.yaml":      "overlays: [{name: base, dir: base}]\n",
		"roles/b.yaml":      "overlays: [{name: base, dir: base}]\nimage: {labl: x}\n",
		"roles/c.yaml":      "overlays: [{name: base, dir: base}]\n",
		"base/etc/app.conf": "conf",
	})
	out := filepath.Join(dir, "out")
	stdout, stderr, code := olimage(t, "-f", dir, "build", "--all", "-o", out, "--json")
	if code == 0 {
		t.Fatalf("build --all with a broken role: exit 0\n%s", stdout)
	}
	var doc struct {
		Images []struct{ Role string }        `json:"images"`
		Failed []struct{ Role, Error string } `json:"failed"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v\n%s\n%s", err, stdout, stderr)
	}
	if len(doc.Images) != 2 || doc.Images[0].Role != "a" || doc.Images[1].Role != "c" {
		t.Errorf("images %+v, want a and c", doc.Images)
	}
	if len(doc.Failed) != 1 || doc.Failed[0].Role != "b" || !strings.Contains(doc.Failed[0].Error, "roles/b.yaml:2: ") {
		t.Errorf("failed %+v, want b with its errors", doc.Failed)
	}
	for _, name := range testfs.Names(t, out) {
		if strings.HasSuffix(name, ".img") {
			testenv.Fsck(t, filepath.Join(out, name))
		}
	}
}
