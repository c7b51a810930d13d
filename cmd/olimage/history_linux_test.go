package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/tree"
)

// historyFleet copies the example fleet to dir and sets the olsystem
// deploy's history: line (appended after active: true); it returns the
// fleet and the line number of history: in roles/ol-base.yaml.
func historyFleet(t *testing.T, fleet, history string) int {
	t.Helper()
	base := filepath.Join(fleet, "roles/ol-base.yaml")
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "      link: opt/openlibrary/olsystem\n      active: true\n"
	s := string(b)
	i := strings.Index(s, anchor)
	if i < 0 {
		t.Fatalf("%s: no olsystem deploy", base)
	}
	s = s[:i+len(anchor)] + "      history: " + history + "\n" + s[i+len(anchor):]
	if err := os.WriteFile(base, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.Count(s[:i+len(anchor)], "\n") + 1
}

func copyFleet(t *testing.T, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", exampleFleet, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
}

// TestDeployHistory builds release A of ol-web, then release B whose
// olsystem deploy carries A's two newest olsystem bins as history; B
// records the order, shows where they came from, checks clean, and on a
// fake root with B at /1, switch moves olsystem to A's bin and back.
func TestDeployHistory(t *testing.T) {
	testenv.RequireRoot(t, "a loop mount")
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet")
	copyFleet(t, fleet)
	os.MkdirAll(filepath.Join(fleet, "releases"), 0o755)
	imgA := filepath.Join(fleet, "releases/a.img")
	mustRun(t, "-f", fleet, "build", "ol-web", "-o", imgA)
	binsA := olsystemBins(t, imgA)
	if len(binsA) != 2 || binsA[1].Bin != "3f9c2e1a7b04" {
		t.Fatalf("A's olsystem bins: %+v, want the active one, then 3f9c2e1a7b04", binsA)
	}
	activeA := binsA[0].Bin

	// Release B: olsystem changes, the olsystem-previous overlay goes,
	// and the history comes from A.
	nextRelease(t, fleet)
	unit := filepath.Join(fleet, "sources/olsystem/etc/systemd/system/ol-web.service")
	historyFleet(t, fleet, "{from: releases/a.img, keep: 2}")

	imgB, imgB2 := filepath.Join(dir, "b.img"), filepath.Join(dir, "b2.img")
	for _, img := range []string{imgB, imgB2} {
		mustRun(t, "-f", fleet, "build", "ol-web", "-o", img)
	}
	b1, _ := os.ReadFile(imgB)
	b2, _ := os.ReadFile(imgB2)
	if !bytes.Equal(b1, b2) {
		t.Errorf("two builds of B differ")
	}
	testenv.Fsck(t, imgB)
	mustRun(t, "verify", imgB)

	binsB := olsystemBins(t, imgB)
	if len(binsB) != 3 || binsB[0].From != "" || binsB[0].Bin == activeA {
		t.Fatalf("B's olsystem bins: %+v", binsB)
	}
	activeB := binsB[0].Bin
	want := []tree.DeployBin{{Bin: activeB}, {Bin: activeA, From: "releases/a.img"}, {Bin: "3f9c2e1a7b04", From: "releases/a.img"}}
	if d := cmp.Diff(want, binsB); d != "" {
		t.Errorf("B's olsystem bins (-want +got):\n%s", d)
	}

	out, errOut, code := olimage(t, "-f", fleet, "plan", "ol-web")
	for _, bin := range []string{activeA, "3f9c2e1a7b04"} {
		if line := fmt.Sprintf("history: opt/openlibrary/deploys/olsystem/%s copied from releases/a.img\n", bin); code != exitOK || !strings.Contains(out, line) {
			t.Errorf("plan: exit %d, no %q\n%s%s", code, line, out, errOut)
		}
	}
	out, errOut, code = olimage(t, "-f", fleet, "explain", "ol-web", "opt/openlibrary/deploys/olsystem/"+activeA+"/etc/systemd/system/ol-web.service")
	if code != exitOK || !strings.Contains(out, "history:   copied from the previous release's image releases/a.img\n") || !strings.Contains(out, `supplied:  overlay "olsystem"`) {
		t.Errorf("explain: exit %d\n%s%s", code, out, errOut)
	}

	// On a fake root with B mounted at /1: switch to A's bin and back.
	vm := newVMRoot(t, dir)
	root, run, unitFile := vm.root, vm.run, vm.unitFile
	before := listing(t, root)
	vm.mount(imgB)
	status := regexp.MustCompile(`(?m)^deploy +olsystem +(\S+) \((.*)\)$`)
	run(exitOK, "activate")
	if u := unitFile(); !strings.Contains(u, "--workers 12") {
		t.Errorf("ol-web.service of B:\n%s", u)
	}
	if m := status.FindStringSubmatch(run(exitOK, "status")); m == nil || m[1] != activeB || !strings.Contains(m[2], activeA) || !strings.Contains(m[2], "3f9c2e1a7b04") {
		t.Errorf("status of B: olsystem %q", m)
	}
	run(exitOK, "switch", "olsystem", activeA)
	if u := unitFile(); !strings.Contains(u, "--workers 8") {
		t.Errorf("ol-web.service after switching to A's bin:\n%s", u)
	}
	if l, _ := os.Readlink(filepath.Join(root, "opt/openlibrary/olsystem")); l != "/1/opt/openlibrary/deploys/olsystem/"+activeA {
		t.Errorf("/opt/openlibrary/olsystem -> %q", l)
	}
	run(exitOK, "switch", "olsystem", activeB)
	if u := unitFile(); !strings.Contains(u, "--workers 12") {
		t.Errorf("ol-web.service after switching back:\n%s", u)
	}
	run(exitOK, "deactivate")
	vm.umount()
	if got := listing(t, root); got != before {
		t.Errorf("after deactivate (-want +got):\n%s", cmp.Diff(before, got))
	}

	// What history refuses, each naming the line of history:.
	other := filepath.Join(dir, "other")
	copyFleet(t, other)
	fy := filepath.Join(other, "olimage.yaml")
	b, _ := os.ReadFile(fy)
	os.WriteFile(fy, bytes.Replace(b, []byte("fleet: openlibrary"), []byte("fleet: elsewhere"), 1), 0o644)
	mustRun(t, "-f", other, "build", "ol-web", "-o", filepath.Join(fleet, "releases/other.img"))
	os.Rename(imgB, filepath.Join(fleet, "releases/b.img"))
	for _, c := range []struct {
		name, history, want string
	}{
		{"keep 0", "{from: releases/a.img, keep: 0}", "deploy: history: keep: want 1 or more"},
		{"missing image", "{from: releases/gone.img, keep: 1}", "releases/gone.img: no such file or directory"},
		{"other fleet", "{from: releases/other.img, keep: 1}", `an image of fleet "elsewhere", not "openlibrary"`},
		{"same bin", "{from: releases/b.img, keep: 1}", "bin " + activeB + " of service olsystem is also this deploy's bin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(dir, "bad-"+strings.ReplaceAll(c.name, " ", "-"))
			copyFleet(t, f)
			os.MkdirAll(filepath.Join(f, "releases"), 0o755)
			for _, img := range []string{"a.img", "b.img", "other.img"} {
				os.Link(filepath.Join(fleet, "releases", img), filepath.Join(f, "releases", img))
			}
			// Same olsystem as B, so B's active bin is this deploy's.
			os.WriteFile(filepath.Join(f, "sources/olsystem/etc/systemd/system/ol-web.service"), []byte(testfs.Read(t, unit)), 0o644)
			line := historyFleet(t, f, c.history)
			out := filepath.Join(dir, c.name+".img")
			_, errOut, code := olimage(t, "-f", f, "build", "ol-web", "-o", out)
			where := fmt.Sprintf("roles/ol-base.yaml:%d", line)
			if code != exitError || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, where) {
				t.Errorf("build: exit %d, want %d with %q at %s\n%s", code, exitError, c.want, where, errOut)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s written despite the error", out)
			}
		})
	}
}

// olsystemBins reads the olsystem bins the manifest inside img orders.
func olsystemBins(t *testing.T, img string) []tree.DeployBin {
	t.Helper()
	src, err := operand.OpenImage(context.Background(), img, operand.NoTree)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	head, err := src.EmbeddedHead()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range head.Deploys {
		if d.Service == "olsystem" {
			return d.Bins
		}
	}
	return nil
}
