package activate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEditFstab(t *testing.T) {
	const line = "LABEL=ol-web /1 ext4 ro,nodev 0 2"
	for _, tc := range []struct {
		name, in, want, did string
	}{
		{"empty", "", line + "\n", FstabAdded},
		{"append", "# static\nUUID=abc / ext4 defaults 0 1\n", "# static\nUUID=abc / ext4 defaults 0 1\n" + line + "\n", FstabAdded},
		{"no final newline", "UUID=abc / ext4 defaults 0 1", "UUID=abc / ext4 defaults 0 1\n" + line + "\n", FstabAdded},
		{"replace by uuid", "UUID=abc / ext4 defaults 0 1\nUUID=0e5d /1 ext4 defaults,nofail 0 2\ntmpfs /tmp tmpfs defaults 0 0\n",
			"UUID=abc / ext4 defaults 0 1\n" + line + "\ntmpfs /tmp tmpfs defaults 0 0\n", FstabReplaced},
		{"duplicates go", "UUID=1 /1 ext4 defaults 0 2\n# keep me /1\nUUID=2\t/1/ ext4 defaults 0 2\n", line + "\n# keep me /1\n", FstabReplaced},
		{"unchanged", "proc /proc proc defaults 0 0\n" + line + "\n", "proc /proc proc defaults 0 0\n" + line + "\n", FstabUnchanged},
		{"commented entry stays", "#UUID=1 /1 ext4 defaults 0 2\n", "#UUID=1 /1 ext4 defaults 0 2\n" + line + "\n", FstabAdded},
		{"other mount points", "/dev/vdc /10 ext4 defaults 0 2\n/dev/vdd /1/x ext4 defaults 0 2\n", "/dev/vdc /10 ext4 defaults 0 2\n/dev/vdd /1/x ext4 defaults 0 2\n" + line + "\n", FstabAdded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, did := editFstab(tc.in, "/1", line)
			if got != tc.want || did != tc.did {
				t.Errorf("got %s %q, want %s %q", did, got, tc.did, tc.want)
			}
		})
	}
	got, _ := editFstab(`LABEL=x /srv/my\040data ext4 defaults 0 2`+"\n", "/srv/my data", "L")
	if got != "L\n" {
		t.Errorf("escaped mount point: got %q, want it replaced", got)
	}
}

func TestWriteFstab(t *testing.T) {
	root := t.TempDir()
	if _, err := WriteFstab(root, "/1", "LABEL=a /1 ext4 ro 0 2"); err == nil {
		t.Fatal("no etc directory: want an error")
	}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	p := filepath.Join(root, FstabFile)
	os.WriteFile(p, []byte("UUID=r / ext4 errors=remount-ro 0 1\nUUID=old /1 ext4 defaults,nofail 0 2\n"), 0o640)
	for i, want := range []string{FstabReplaced, FstabUnchanged} {
		did, err := WriteFstab(root, "/1", "LABEL=ol-web /1 ext4 ro,nodev 0 2")
		if err != nil || did != want {
			t.Fatalf("run %d: got %s, %v, want %s", i+1, did, err, want)
		}
	}
	b, _ := os.ReadFile(p)
	if want := "UUID=r / ext4 errors=remount-ro 0 1\nLABEL=ol-web /1 ext4 ro,nodev 0 2\n"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the old file's 0640", fi.Mode())
	}
	if m, _ := filepath.Glob(filepath.Join(root, "etc", ".fstab*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	os.Remove(p)
	os.Symlink("/elsewhere", p)
	if _, err := WriteFstab(root, "/1", "LABEL=a /1 ext4 ro 0 2"); err == nil || !strings.Contains(err.Error(), "a symlink") {
		t.Errorf("fstab is a symlink: got %v, want it refused", err)
	}
}

func TestInstallActivateUnit(t *testing.T) {
	root := t.TempDir()
	var calls []string
	sc := func(_ context.Context, args ...string) error {
		calls = append(calls, strings.Join(args, " "))
		return nil
	}
	o := UnitOptions{Exec: "/usr/local/bin/olimage", Volume: "/1"}
	changed, err := InstallActivateUnit(context.Background(), root, o, sc)
	want := []string{"etc/systemd/system/olimage-activate.service", "etc/systemd/system/multi-user.target.wants/olimage-activate.service"}
	if err != nil || !slices.Equal(changed, want) {
		t.Fatalf("got %q, %v, want %q", changed, err, want)
	}
	b, _ := os.ReadFile(filepath.Join(root, want[0]))
	for _, l := range []string{"Requires=1.mount\n", "After=1.mount\n", "Before=multi-user.target\n", "ExecStart=/usr/local/bin/olimage activate --volume /1 --root /\n", "WantedBy=multi-user.target\n"} {
		if !strings.Contains(string(b), l) {
			t.Errorf("unit lacks %q:\n%s", l, b)
		}
	}
	if l, _ := os.Readlink(filepath.Join(root, want[1])); l != "/etc/systemd/system/olimage-activate.service" {
		t.Errorf("wants link: got %q", l)
	}
	if !slices.Equal(calls, []string{"daemon-reload"}) {
		t.Errorf("systemctl calls %q, want daemon-reload", calls)
	}
	changed, err = InstallActivateUnit(context.Background(), root, o, sc)
	if err != nil || len(changed) != 0 || len(calls) != 1 {
		t.Errorf("second run: changed %q, %v, calls %q; want nothing", changed, err, calls)
	}
	// A new --volume replaces the unit; a wrong wants link is repaired.
	os.Remove(filepath.Join(root, want[1]))
	os.Symlink("/dev/null", filepath.Join(root, want[1]))
	changed, err = InstallActivateUnit(context.Background(), root, UnitOptions{Exec: "/usr/bin/olimage", Volume: "/srv/data"}, sc)
	if err != nil || !slices.Equal(changed, want) {
		t.Errorf("update: got %q, %v, want %q", changed, err, want)
	}
	b, _ = os.ReadFile(filepath.Join(root, want[0]))
	if !strings.Contains(string(b), "Requires=srv-data.mount\n") {
		t.Errorf("unit for /srv/data:\n%s", b)
	}
	if _, err := ActivateUnit(UnitOptions{Exec: "olimage", Volume: "/1"}); err == nil {
		t.Error("relative binary: want an error")
	}
}

// FuzzEditFstab checks, for any fstab, that the result has the line as
// its one entry for /1 and every other line as it was, in order.
func FuzzEditFstab(f *testing.F) {
	for _, s := range []string{"", "UUID=a / ext4 defaults 0 1\n", "UUID=1 /1 ext4 defaults 0 2\nx /1/ y\n", "#c /1\n\n  \t\n", "a /srv/my\\040x b", "L /\\061 ext4"} {
		f.Add(s)
	}
	const line = "LABEL=ol-web /1 ext4 ro,nodev 0 2"
	f.Fuzz(func(t *testing.T, in string) {
		out, did := editFstab(in, "/1", line)
		var kept, ours []string
		for _, l := range strings.SplitAfter(out, "\n") {
			if fstabMount(l) == "/1" {
				ours = append(ours, l)
			} else if l != "" {
				kept = append(kept, l)
			}
		}
		if len(ours) != 1 || ours[0] != line+"\n" {
			t.Fatalf("entries for /1: %q", ours)
		}
		var want []string
		for _, l := range strings.SplitAfter(in, "\n") {
			if fstabMount(l) != "/1" && l != "" {
				want = append(want, l)
			}
		}
		// A last line without a newline gets one only when the entry
		// goes after it.
		if n := len(want); n > 0 && !strings.HasSuffix(want[n-1], "\n") && did == FstabAdded {
			want[n-1] += "\n"
		}
		if !slices.Equal(kept, want) {
			t.Fatalf("other lines: got %q, want %q", kept, want)
		}
		if again, did2 := editFstab(out, "/1", line); again != out || did2 != FstabUnchanged {
			t.Fatalf("second edit (%s) changed %q to %q", did2, out, again)
		}
	})
}

func TestActivateUnitKey(t *testing.T) {
	o := UnitOptions{Exec: "/usr/local/bin/olimage", Volume: "/1", Key: "/etc/olimage/ci.pub", Sidecar: "/etc/olimage/ol-web.manifest.json"}
	text, err := ActivateUnit(o)
	want := "ExecStart=/usr/local/bin/olimage activate --volume /1 --root / --key /etc/olimage/ci.pub --sidecar /etc/olimage/ol-web.manifest.json\n"
	if err != nil || !strings.Contains(text, want) {
		t.Fatalf("got %v:\n%s\nwant the line %q", err, text, want)
	}
	for name, bad := range map[string]UnitOptions{
		"key alone":        {Exec: o.Exec, Volume: o.Volume, Key: o.Key},
		"sidecar alone":    {Exec: o.Exec, Volume: o.Volume, Sidecar: o.Sidecar},
		"relative key":     {Exec: o.Exec, Volume: o.Volume, Key: "ci.pub", Sidecar: o.Sidecar},
		"sidecar with a $": {Exec: o.Exec, Volume: o.Volume, Key: o.Key, Sidecar: "/etc/olimage/$x.json"},
	} {
		if text, err := ActivateUnit(bad); err == nil {
			t.Errorf("%s: got no error:\n%s", name, text)
		}
	}
}
