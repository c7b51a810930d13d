package activate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// vu is a release whose olsystem ships a unit, enabled, and a masked
// one, with two olsystem bins.
var vu = volume{
	uuid: "33333333-3333-5333-8333-333333333333",
	tree: spec{
		"etc/systemd/system/ol-web.service":                                      "link:/opt/openlibrary/olsystem/etc/systemd/system/ol-web.service",
		"etc/systemd/system/multi-user.target.wants/ol-web.service":              "link:/etc/systemd/system/ol-web.service",
		"etc/systemd/system/ol-web.socket.d/override.conf":                       "file:[Socket]\n",
		"etc/systemd/system/ol-web.socket":                                       "file:[Socket]\nListenStream=8080\n",
		"etc/systemd/system/apt-daily.timer":                                     "link:/dev/null",
		"opt/openlibrary/olsystem":                                               "link:deploys/olsystem/bbb",
		"opt/openlibrary/openlibrary":                                            "link:deploys/openlibrary/c1",
		"opt/openlibrary/venv/bin/python":                                        "file:py\n",
		"opt/openlibrary/deploys/olsystem/aaa/etc/systemd/system/ol-web.service": "file:[Service]\nExecStart=/bin/true aaa\n",
		"opt/openlibrary/deploys/olsystem/bbb/etc/systemd/system/ol-web.service": "file:[Service]\nExecStart=/bin/true bbb\n",
		"opt/openlibrary/deploys/openlibrary/c1/app.py":                          "file:c1\n",
	},
	links: []string{
		"etc/systemd/system/apt-daily.timer",
		"etc/systemd/system/multi-user.target.wants/ol-web.service",
		"etc/systemd/system/ol-web.service",
		"etc/systemd/system/ol-web.socket",
		"etc/systemd/system/ol-web.socket.d/override.conf",
		"opt/openlibrary",
	},
}

type recorder []string

func (r *recorder) systemctl(_ context.Context, args ...string) error {
	*r = append(*r, strings.Join(args, " "))
	return nil
}

func TestBootUnits(t *testing.T) {
	root, base := newRoot(t, vu)
	var calls recorder
	o := Options{Systemctl: calls.systemctl}
	activate(t, root, o)
	unit := func(bin string) string {
		return "file:" + writtenHeader("/1/etc/systemd/system/ol-web.service") + "[Service]\nExecStart=/bin/true " + bin + "\n"
	}
	want := edit(base,
		"etc/systemd/system/ol-web.service>"+bk(vu.uuid, "etc/systemd/system/ol-web.service"),
		"etc/systemd/system/ol-web.service="+unit("bbb"),
		"etc/systemd/system/ol-web.service.d/olimage.conf=file:"+dropIn("/1"),
		"etc/systemd/system/multi-user.target.wants/ol-web.service=link:/etc/systemd/system/ol-web.service",
		"etc/systemd/system/ol-web.socket.d/override.conf=file:"+writtenHeader("/1/etc/systemd/system/ol-web.socket.d/override.conf")+"[Socket]\n",
		// No drop-in for a socket: it comes before activation.
		"etc/systemd/system/ol-web.socket=file:"+writtenHeader("/1/etc/systemd/system/ol-web.socket")+"[Socket]\nListenStream=8080\n",
		"etc/systemd/system/apt-daily.timer=link:/dev/null",
		"opt/openlibrary/deploys=link:/1/opt/openlibrary/deploys",
		"opt/openlibrary/olsystem=link:/1/opt/openlibrary/deploys/olsystem/bbb",
		"opt/openlibrary/openlibrary=link:/1/opt/openlibrary/deploys/openlibrary/c1",
		"opt/openlibrary/venv=link:/1/opt/openlibrary/venv",
		JournalFile+"=file:*",
	)
	check(t, root, want, "after activate")
	if diff := cmp.Diff(recorder{"daemon-reload", "restart --no-block ol-web.service"}, calls); diff != "" {
		t.Errorf("systemctl calls (-want +got):\n%s", diff)
	}
	st, err := ReadStatus(Options{Root: root, Volume: "/1"})
	if err != nil || !st.OK() {
		t.Fatalf("status: %v %q", err, st.Findings)
	}
	wantDeploys := []DeployStatus{
		{Service: "olsystem", Path: "opt/openlibrary/olsystem", Bin: "bbb", Default: "bbb", Bins: []string{"aaa", "bbb"}},
		{Service: "openlibrary", Path: "opt/openlibrary/openlibrary", Bin: "c1", Default: "c1", Bins: []string{"c1"}},
	}
	if diff := cmp.Diff(wantDeploys, st.Deploys); diff != "" {
		t.Errorf("status deploys (-want +got):\n%s", diff)
	}

	// Switch olsystem to the older bin: the link and the unit from it.
	calls = nil
	if _, err := Switch(ctx, Options{Root: root, Systemctl: calls.systemctl}, "olsystem", "aaa"); err != nil {
		t.Fatal(err)
	}
	switched := edit(want,
		"etc/systemd/system/ol-web.service="+unit("aaa"),
		"opt/openlibrary/olsystem=link:/1/opt/openlibrary/deploys/olsystem/aaa",
	)
	check(t, root, switched, "after switch")
	if diff := cmp.Diff(recorder{"daemon-reload", "restart --no-block ol-web.service"}, calls); diff != "" {
		t.Errorf("systemctl calls after switch (-want +got):\n%s", diff)
	}
	// At the next boot activate runs again: the switch holds, and the
	// units only start.
	calls = nil
	if rep := activate(t, root, Options{Systemctl: calls.systemctl}); rep.Changed() {
		t.Errorf("re-activate after switch changed %q", ops(rep))
	}
	if diff := cmp.Diff(recorder{"start --no-block ol-web.service"}, calls); diff != "" {
		t.Errorf("systemctl calls when nothing changed (-want +got):\n%s", diff)
	}
	check(t, root, switched, "after re-activate")
	st, _ = ReadStatus(Options{Root: root, Volume: "/1"})
	if !st.OK() || st.Deploys[0].Bin != "aaa" {
		t.Errorf("status after switch: %q %+v", st.Findings, st.Deploys)
	}

	// Bins and services the image lacks are refused, changing nothing.
	for _, tc := range []struct {
		svc, bin string
		err      error
	}{{"olsystem", "zzz", ErrNoBin}, {"solr", "aaa", ErrNoDeploy}} {
		if _, err := Switch(ctx, Options{Root: root}, tc.svc, tc.bin); !errors.Is(err, tc.err) {
			t.Errorf("switch %s %s: got %v, want %v", tc.svc, tc.bin, err, tc.err)
		}
	}
	check(t, root, switched, "after refused switches")

	// Deactivate stops the unit and takes everything back.
	calls = nil
	if _, err := Deactivate(ctx, Options{Root: root, Systemctl: calls.systemctl}); err != nil {
		t.Fatal(err)
	}
	check(t, root, base, "after deactivate")
	if diff := cmp.Diff(recorder{"stop --no-block ol-web.service ol-web.socket", "daemon-reload"}, calls); diff != "" {
		t.Errorf("systemctl calls on deactivate (-want +got):\n%s", diff)
	}
	// Without the journal, recover finds the files activate wrote by
	// their first line, and the links enabling them; a mask it cannot
	// tell from the distribution's own stays.
	activate(t, root, Options{})
	os.Remove(filepath.Join(root, JournalFile))
	if _, err := Recover(ctx, Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	check(t, root, edit(base, "opt/openlibrary=dir", "etc/systemd/system/ol-web.service.d=dir",
		"etc/systemd/system/ol-web.socket.d=dir", "etc/systemd/system/multi-user.target.wants=dir",
		"etc/systemd/system/apt-daily.timer=link:/dev/null"), "after recover")
	// Switch needs the volume active.
	if _, err := Switch(ctx, Options{Root: root}, "olsystem", "aaa"); !errors.Is(err, ErrNotActive) {
		t.Errorf("switch with nothing active: got %v, want %v", err, ErrNotActive)
	}
}

// TestNextRelease attaches the next release at the same mount point:
// links it adds, keeps and drops, and a switch that does not carry over.
func TestNextRelease(t *testing.T) {
	root, _ := newRoot(t, vu)
	activate(t, root, Options{})
	if _, err := Switch(ctx, Options{Root: root}, "olsystem", "aaa"); err != nil {
		t.Fatal(err)
	}
	next := volume{
		uuid: "44444444-4444-5444-8444-444444444444",
		tree: spec{
			"etc/systemd/system/ol-web.service":                                      "link:/opt/openlibrary/olsystem/etc/systemd/system/ol-web.service",
			"etc/systemd/system/multi-user.target.wants/ol-web.service":              "link:/etc/systemd/system/ol-web.service",
			"etc/nginx/nginx.conf":                                                   "file:nginx\n",
			"opt/openlibrary/olsystem":                                               "link:deploys/olsystem/ccc",
			"opt/openlibrary/openlibrary":                                            "link:deploys/openlibrary/c2",
			"opt/openlibrary/deploys/olsystem/ccc/etc/systemd/system/ol-web.service": "file:[Service]\nExecStart=/bin/true ccc\n",
			"opt/openlibrary/deploys/openlibrary/c2/app.py":                          "file:c2\n",
		},
		links: []string{
			"etc/nginx/nginx.conf",
			"etc/systemd/system/multi-user.target.wants/ol-web.service",
			"etc/systemd/system/ol-web.service",
			"opt/openlibrary",
		},
	}
	writeVolume(t, filepath.Join(root, "1"), next)
	var calls recorder
	rep := activate(t, root, Options{Systemctl: calls.systemctl})
	var got []string
	for _, c := range rep.Changes {
		if c.Op != OpKeep {
			got = append(got, string(c.Op)+" "+c.Path)
		}
	}
	slices.Sort(got)
	wantOps := []string{
		"link etc/nginx/nginx.conf",
		"link opt/openlibrary/olsystem",
		"link opt/openlibrary/openlibrary",
		"move etc/nginx/nginx.conf",
		"remove etc/systemd/system/ol-web.service",
		"remove etc/systemd/system/ol-web.socket",
		"remove etc/systemd/system/ol-web.socket.d/override.conf",
		"rmdir etc/systemd/system/ol-web.socket.d",
		"unlink etc/systemd/system/apt-daily.timer",
		"unlink opt/openlibrary/olsystem",
		"unlink opt/openlibrary/openlibrary",
		"unlink opt/openlibrary/venv",
		"write etc/systemd/system/ol-web.service",
	}
	if diff := cmp.Diff(wantOps, got); diff != "" {
		t.Errorf("next release steps (-want +got):\n%s", diff)
	}
	st, err := ReadStatus(Options{Root: root, Volume: "/1"})
	if err != nil || !st.OK() || st.Deploys[0].Bin != "ccc" || st.Deploys[1].Bin != "c2" {
		t.Errorf("status: %v %q %+v", err, st.Findings, st.Deploys)
	}
	if !slices.Contains(calls, "daemon-reload") {
		t.Errorf("systemctl calls %q, want a daemon-reload", calls)
	}
	// Rollback: the previous release again.
	writeVolume(t, filepath.Join(root, "1"), vu)
	activate(t, root, Options{})
	st, _ = ReadStatus(Options{Root: root, Volume: "/1"})
	if !st.OK() || st.Deploys[0].Bin != "bbb" {
		t.Errorf("rolled back: %q %+v", st.Findings, st.Deploys)
	}
}

// TestDeploysOnlyInDeploysDir: a directory named deploys elsewhere in
// /opt is plain content, linked whole, with no deploy to switch; only
// tree.DeploysDir holds deploys.
func TestDeploysOnlyInDeploysDir(t *testing.T) {
	v := volume{
		uuid: "55555555-5555-5555-8555-555555555555",
		tree: spec{
			"opt/openlibrary/olsystem":                    "link:deploys/olsystem/bbb",
			"opt/openlibrary/deploys/olsystem/aaa/README": "file:aaa\n",
			"opt/openlibrary/deploys/olsystem/bbb/README": "file:bbb\n",
			"opt/other/current":                           "link:deploys/tool/v2",
			"opt/other/deploys/tool/v1/bin":               "file:v1\n",
			"opt/other/deploys/tool/v2/bin":               "file:v2\n",
		},
		links: []string{"opt/openlibrary", "opt/other"},
	}
	root, base := newRoot(t, v)
	activate(t, root, Options{})
	want := edit(base,
		"opt/openlibrary/deploys=link:/1/opt/openlibrary/deploys",
		"opt/openlibrary/olsystem=link:/1/opt/openlibrary/deploys/olsystem/bbb",
		"opt/other=link:/1/opt/other",
		JournalFile+"=file:*",
	)
	check(t, root, want, "after activate")
	st, err := ReadStatus(Options{Root: root, Volume: "/1"})
	if err != nil || !st.OK() {
		t.Fatalf("status: %v %q", err, st.Findings)
	}
	wantDeploys := []DeployStatus{{Service: "olsystem", Path: "opt/openlibrary/olsystem", Bin: "bbb", Default: "bbb", Bins: []string{"aaa", "bbb"}}}
	if diff := cmp.Diff(wantDeploys, st.Deploys); diff != "" {
		t.Errorf("status deploys (-want +got):\n%s", diff)
	}
	if _, err := Switch(ctx, Options{Root: root}, "tool", "v1"); !errors.Is(err, ErrNoDeploy) {
		t.Errorf("switch tool v1: got %v, want %v", err, ErrNoDeploy)
	}
	check(t, root, want, "after refused switch")
}
