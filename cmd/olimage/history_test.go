package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// TestDeployHistoryOrder carries bins from an image whose manifest orders
// only some of them (as an image of an older olimage orders none): the
// ordered ones count as newest, the rest follow by name.
func TestDeployHistoryOrder(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"olimage.yaml": "fleet: t\nepoch: 2024-01-01T00:00:00Z\n",
		// bbb and aaa are put there by a plain directory, so a's manifest
		// orders only zzz, its deploy.
		"src/old/opt/openlibrary/deploys/olsystem/bbb/f": "b\n",
		"src/old/opt/openlibrary/deploys/olsystem/aaa/f": "a\n",
		"src/sys/f":    "z\n",
		"src/new/f":    "n\n",
		"roles/a.yaml": "overlays:\n  - name: old\n    dir: src/old\n  - name: sys\n    deploy: {service: olsystem, source: src/sys, revision: zzz}\n",
		"roles/b.yaml": "overlays:\n  - name: sys\n    deploy:\n      service: olsystem\n      source: src/new\n      revision: new\n      history: {from: a.img, keep: 2}\n",
	}
	testfs.WriteFiles(t, dir, files)
	mustRun(t, "-f", dir, "build", "a", "-o", filepath.Join(dir, "a.img"))
	out, errOut, code := olimage(t, "-f", dir, "plan", "b", "--json")
	if code != exitOK {
		t.Fatalf("plan b: exit %d\n%s", code, errOut)
	}
	var plan manifest.Plan
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatal(err)
	}
	want := []tree.Deploy{{Service: "olsystem", Bins: []tree.DeployBin{{Bin: "new"}, {Bin: "zzz", From: "a.img"}, {Bin: "aaa", From: "a.img"}}}}
	if d := cmp.Diff(want, plan.Deploys); d != "" {
		t.Errorf("deploys (-want +got):\n%s", d)
	}
	var paths []string
	for _, e := range plan.Entries {
		paths = append(paths, e.Path)
	}
	wantPaths := []string{"opt", "opt/openlibrary", "opt/openlibrary/deploys", "opt/openlibrary/deploys/olsystem",
		"opt/openlibrary/deploys/olsystem/aaa", "opt/openlibrary/deploys/olsystem/aaa/f",
		"opt/openlibrary/deploys/olsystem/new", "opt/openlibrary/deploys/olsystem/new/f",
		"opt/openlibrary/deploys/olsystem/zzz", "opt/openlibrary/deploys/olsystem/zzz/f", "opt/openlibrary/olsystem"}
	if d := cmp.Diff(wantPaths, paths); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
}
