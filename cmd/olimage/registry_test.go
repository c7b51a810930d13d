package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/artifact"
	"github.com/internetarchive/olimage/internal/registrytest"
)

// push, pull, inspect and diff against a real registry, through the CLI:
// what a CI job and an operator run.
func TestRegistryCommands(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	a := release(t, "a", nil)
	b := release(t, "b", secondRelease)
	refA, refB := reg.Host+"/ol/ol-web:2024.01", reg.Host+"/ol/ol-web:2024.02"

	out, errs, code := olimage(t, "push", "--insecure", "--json", a, refA, "--tag", "latest")
	if code != 0 {
		t.Fatalf("push: exit %d\n%s", code, errs)
	}
	var pushed struct {
		Schema string   `json:"schema"`
		Digest string   `json:"digest"`
		Tags   []string `json:"tags"`
		Image  string   `json:"image"`
	}
	if err := json.Unmarshal([]byte(out), &pushed); err != nil {
		t.Fatalf("push --json: %v\n%s", err, out)
	}
	sideA, err := os.ReadFile(a + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := artifact.ParseSidecar(sideA)
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Schema != "olimage.push/v1" || !strings.HasPrefix(pushed.Digest, "sha256:") || strings.Join(pushed.Tags, ",") != "2024.01,latest" || pushed.Image != sa.Identity() {
		t.Errorf("push --json: got %+v", pushed)
	}
	out, errs, code = olimage(t, "push", "--insecure", "--chunk", "64", "--json", b, refB)
	if code != 0 {
		t.Fatalf("push: exit %d\n%s", code, errs)
	}
	var pushedB artifact.PushResult
	if err := json.Unmarshal([]byte(out), &pushedB); err != nil {
		t.Fatal(err)
	}
	if want := (pushedB.Size + 64<<20 - 1) / (64 << 20); int64(pushedB.Layers) != want {
		t.Errorf("push --chunk 64 of %d bytes: %d layers, want %d", pushedB.Size, pushedB.Layers, want)
	}

	// inspect reads the sidecar only.
	out, errs, code = olimage(t, "inspect", "--insecure", "--json", reg.Host+"/ol/ol-web:latest")
	if code != 0 {
		t.Fatalf("inspect: exit %d\n%s", code, errs)
	}
	var ins inspectRefJSON
	if err := json.Unmarshal([]byte(out), &ins); err != nil {
		t.Fatal(err)
	}
	if ins.Schema != "olimage.inspect/v1" || ins.Digest != pushed.Digest || ins.Verity == nil || ins.Verity.RootHash != sa.Image.Verity.RootHash || ins.Manifest.Role != "ol-web" || ins.Manifest.Tree != sa.Manifest.TreeDigest {
		t.Errorf("inspect --json: got %+v", ins)
	}

	// diff of two references says what diff of the two sidecars says.
	want, _, wcode := olimage(t, "diff", a+".manifest.json", b+".manifest.json")
	got, errs, code := olimage(t, "diff", "--insecure", refA, refB)
	if code != 1 || wcode != 1 || got != want {
		t.Errorf("diff REF REF: exit %d, want 1; output:\n%s\nwant (exit %d):\n%s%s", code, got, wcode, want, errs)
	}

	// pull writes the image and its sidecar.
	dir := t.TempDir()
	target := filepath.Join(dir, "ol-web.img")
	out, errs, code = olimage(t, "pull", "--insecure", "--json", refA, "-o", target)
	if code != 0 {
		t.Fatalf("pull: exit %d\n%s", code, errs)
	}
	var pulled artifact.PullResult
	if err := json.Unmarshal([]byte(out), &pulled); err != nil || !strings.Contains(out, `"schema": "olimage.pull/v1"`) {
		t.Fatalf("pull --json: %v\n%s", err, out)
	}
	if pulled.Image != sa.Identity() || pulled.Digest != pushed.Digest {
		t.Errorf("pull --json: got %+v", pulled)
	}
	if _, errs, code := olimage(t, "verify", target); code != 0 {
		t.Errorf("verify of the pulled image: exit %d\n%s", code, errs)
	}
	if out, _, code := olimage(t, "diff", a, target); code != 0 {
		t.Errorf("diff of the built and the pulled image: exit %d\n%s", code, out)
	}

	// Failures: exit 2, an error naming the reference, a hint where one helps.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pull", "--insecure", reg.Host + "/ol/ol-web:nope", "-o", filepath.Join(dir, "x.img")}, reg.Host + "/ol/ol-web:nope"},
		{[]string{"pull", refA, "-o", filepath.Join(dir, "x.img")}, "olimage: hint: the registry speaks plain HTTP; --insecure"},
		{[]string{"pull", "--insecure", "registry.example.org/ol/ol-web:1", "-o", filepath.Join(dir, "x.img")}, "plain HTTP is only allowed to localhost"},
		{[]string{"pull", refA}, "-o FILE|DEVICE is required"},
		{[]string{"push", "--insecure", a, reg.Host + "/ol/ol-web"}, "no tag"},
		{[]string{"push", "--insecure", "--chunk", "0", a, refA}, "--chunk 0"},
		{[]string{"push", "--insecure", filepath.Join(dir, "missing.img"), refA}, "missing.img"},
		{[]string{"inspect", "--insecure", reg.Host + "/ol/ol-web:nope"}, "ol-web:nope"},
	} {
		_, errs, code := olimage(t, tc.args...)
		if code != 2 || !strings.Contains(errs, "olimage: error: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("olimage %s: exit %d, stderr:\n%s\nwant exit 2 and %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%s holds %d files, want the pulled image and its sidecar only", dir, len(ents))
	}
}
