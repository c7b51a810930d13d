package activate

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/manifest"
)

// withTree returns v with more volume entries and plan links.
func withTree(v volume, tree spec, plan ...manifest.Link) volume {
	v.tree = maps.Clone(v.tree)
	maps.Copy(v.tree, tree)
	v.plan = plan
	return v
}

// refuse checks that activating the root, forced or not and as a dry
// run, fails with ErrUnsafe naming msg, and changes nothing.
func refuse(t *testing.T, root, msg string) {
	t.Helper()
	before := snapshot(t, root)
	for _, o := range []Options{{}, {Force: true}, {DryRun: true}} {
		o.Root = root
		_, err := Activate(ctx, o)
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("activate %+v: got error %v, want %v containing %q", o, err, ErrUnsafe, msg)
		}
		check(t, root, before, "after a refused activate")
	}
}

// TestConfined: a manifest rewritten to be self-consistent (its entries
// describe the volume) may still link only the image's own opt/ and etc/
// paths, each to the same path in the volume.
func TestConfined(t *testing.T) {
	motd := spec{"etc/motd": "file:attacker's key\n"}
	for _, tc := range []struct {
		name string
		v    volume
		msg  string
	}{
		{"root's authorized_keys", withTree(v1, motd, manifest.Link{Path: "root/.ssh/authorized_keys", Target: "etc/motd"}),
			"/root/.ssh/authorized_keys: refused: links to etc/motd in the volume"},
		{"outside opt and etc", withTree(v1, spec{"usr/bin/sudo": "file:x"}, manifest.Link{Path: "usr/bin/sudo", Target: "usr/bin/sudo"}),
			"/usr/bin/sudo: refused: an image links only top-level /opt entries and paths under /etc"},
		{"another etc path", withTree(v1, motd, manifest.Link{Path: "etc/hostname", Target: "etc/motd"}),
			"/etc/hostname: refused: links to etc/motd"},
		{"below an opt entry", withTree(v1, nil, manifest.Link{Path: "opt/openlibrary/deploys", Target: "opt/openlibrary/deploys"}),
			"/opt/openlibrary/deploys: refused: an image links only top-level /opt entries"},
		{"etc itself", withTree(v1, nil, manifest.Link{Path: "etc", Target: "etc"}),
			"/etc: refused: an image links only"},
		{"not the image's own", withTree(v1, nil, manifest.Link{Path: "etc/cron.d/other", Target: "etc/cron.d/other"}),
			"/etc/cron.d/other: refused: the image's manifest has no entry etc/cron.d/other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := newRoot(t, tc.v)
			writeSpec(t, root, spec{"root/.ssh/authorized_keys": "file:admin's key\n"})
			refuse(t, root, tc.msg)
			if b, _ := os.ReadFile(filepath.Join(root, "root/.ssh/authorized_keys")); string(b) != "admin's key\n" {
				t.Errorf("authorized_keys now holds %q", b)
			}
		})
	}
}

// TestSensitive: links to credentials and login configuration, and into
// home directories, need the VM's policy file to allow them for the role.
func TestSensitive(t *testing.T) {
	sshd := "etc/ssh/sshd_config.d/ol.conf"
	v := withTree(v1, spec{sshd: "file:PermitRootLogin yes\n"}, manifest.Link{Path: sshd, Target: sshd})
	policy := func(t *testing.T, root, text string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, PolicyFile)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("no policy", func(t *testing.T) {
		root, _ := newRoot(t, v)
		refuse(t, root, "/etc/ssh/sshd_config.d/ol.conf: refused: a sensitive path; /etc/olimage/policy.yaml does not allow it for role ol-web")
	})
	t.Run("another role's", func(t *testing.T) {
		root, _ := newRoot(t, v)
		policy(t, root, "allow:\n  ol-db: [/etc/ssh/**]\n", 0o644)
		refuse(t, root, "/etc/ssh/sshd_config.d/ol.conf: refused: a sensitive path")
	})
	t.Run("writable by others", func(t *testing.T) {
		root, _ := newRoot(t, v)
		policy(t, root, "allow:\n  ol-web: [/etc/ssh/**]\n", 0o666)
		refuse(t, root, "policy.yaml: refused: mode 0666 is writable by group or others")
	})
	t.Run("directory writable by others", func(t *testing.T) {
		root, _ := newRoot(t, v)
		policy(t, root, "allow:\n  ol-web: [/etc/ssh/**]\n", 0o644)
		os.Chmod(filepath.Join(root, "etc/olimage"), 0o777)
		refuse(t, root, "etc/olimage: refused: mode 0777 is writable by group or others")
	})
	t.Run("a symlink", func(t *testing.T) {
		root, _ := newRoot(t, v)
		policy(t, root, "allow:\n  ol-web: [/etc/ssh/**]\n", 0o644)
		p := filepath.Join(root, PolicyFile)
		os.Rename(p, p+".real")
		os.Symlink("policy.yaml.real", p)
		refuse(t, root, "policy.yaml: refused: a symlink")
	})
	t.Run("not owned by root", func(t *testing.T) {
		if os.Getuid() != 0 {
			testenv.Skip(t, "chown needs root")
		}
		root, _ := newRoot(t, v)
		policy(t, root, "allow:\n  ol-web: [/etc/ssh/**]\n", 0o644)
		if err := os.Chown(filepath.Join(root, PolicyFile), 1000, 1000); err != nil {
			t.Fatal(err)
		}
		refuse(t, root, "policy.yaml: refused: owned by uid 1000, want root")
	})
	t.Run("unknown key", func(t *testing.T) {
		root, _ := newRoot(t, v)
		policy(t, root, "allows:\n  ol-web: [/etc/ssh/**]\n", 0o644)
		_, err := Activate(ctx, Options{Root: root})
		if err == nil || !strings.Contains(err.Error(), "policy.yaml: yaml: unmarshal errors:\n  line 1: field allows not found") {
			t.Fatalf("got %v, want the unknown key named", err)
		}
	})
	t.Run("home directory", func(t *testing.T) {
		root, _ := newRoot(t, v1)
		writeSpec(t, root, spec{"etc/passwd": "file:root:x:0:0:root:/root:/bin/sh\nopenlibrary:x:999:999::/opt/openlibrary:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n"})
		refuse(t, root, "/opt/openlibrary: refused: in the home directory /opt/openlibrary")
	})
	if os.Getuid() != 0 {
		return // the policy below is owned by the user, and refused
	}
	t.Run("allowed", func(t *testing.T) {
		root, _ := newRoot(t, v)
		policy(t, root, "# sshd drop-ins come with the image\nallow:\n  ol-web:\n    - /etc/ssh/sshd_config.d/*.conf\n", 0o644)
		activate(t, root, Options{})
		if got, _ := os.Readlink(filepath.Join(root, sshd)); got != "/1/"+sshd {
			t.Errorf("/%s links to %q", sshd, got)
		}
	})
	t.Run("allowed for every role", func(t *testing.T) {
		root, _ := newRoot(t, v)
		policy(t, root, "allow:\n  \"*\": [/etc/ssh/**]\n", 0o600)
		activate(t, root, Options{})
	})
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		g, p string
		want bool
	}{
		{"/etc/ssh/**", "/etc/ssh", true},
		{"/etc/ssh/**", "/etc/ssh/a/b", true},
		{"/etc/ssh/**", "/etc/sshd", false},
		{"/etc/sudoers*", "/etc/sudoers", true},
		{"/etc/sudoers*", "/etc/sudoers.d", true},
		{"/etc/sudoers*", "/etc/sudoers.d/x", false},
		{"/**/x", "/a/b/x", true},
		{"/etc/*.conf", "/etc/a.conf", true},
		{"/etc/*.conf", "/etc/a/b.conf", false},
	} {
		if got := matchGlob(tc.g, tc.p); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tc.g, tc.p, got, tc.want)
		}
	}
}

// TestRoleChange: a volume of another role than the active image's is
// refused, unless the role change is asked for.
func TestRoleChange(t *testing.T) {
	root, _ := newRoot(t, v1)
	activate(t, root, Options{})
	db := v2
	db.role = "ol-db"
	writeVolume(t, filepath.Join(root, "1"), db)
	before := snapshot(t, root)
	for _, o := range []Options{{}, {DryRun: true}, {Force: true}} {
		o.Root = root
		_, err := Activate(ctx, o)
		if !errors.Is(err, ErrRoleChange) || !strings.Contains(err.Error(), "volume /1: another role: it holds an image of role ol-db, and ol-web is active on this machine") {
			t.Fatalf("activate %+v: got %v, want %v", o, err, ErrRoleChange)
		}
	}
	check(t, root, before, "after a refused role change")
	rep := activate(t, root, Options{RoleChange: true})
	if rep.Image.Role != "ol-db" || rep.Previous.Role != "ol-web" {
		t.Errorf("role change: image %+v, previous %+v", rep.Image, rep.Previous)
	}
}
