package activate

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/manifest"
)

// activate refuses, before anything changes, while a declared secret is
// missing or has another owner or mode, naming every one; once they are
// right it goes ahead.
func TestSecrets(t *testing.T) {
	root, _ := newRoot(t, v1)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	secrets := []manifest.SecretPath{
		{Path: "etc/openlibrary/secrets.yml", Owner: "openlibrary", UID: uid, GID: gid, Mode: "0600"},
		{Path: "etc/openlibrary/infobase.yml", UID: uid, GID: gid, Mode: "0640"},
		{Path: "etc/ssl/private/ol.key", UID: uid, GID: gid, Mode: "0600"},
		{Path: "etc/coverstore.yml", UID: uid, GID: gid, Mode: "0600"},
	}
	editManifest(t, filepath.Join(root, "1"), func(m *manifest.Manifest) { m.Activation.Secrets = secrets })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/openlibrary"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/openlibrary/infobase.yml"), []byte("secret_key: k\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "elsewhere"), []byte("k\n"), 0o600))
	must(os.Symlink("../elsewhere", filepath.Join(root, "etc/coverstore.yml")))
	before := snapshot(t, root)

	for _, dry := range []bool{true, false} {
		_, err := Activate(ctx, Options{Root: root, DryRun: dry})
		if !errors.Is(err, ErrSecrets) {
			t.Fatalf("dry run %v: got %v, want an error wrapping ErrSecrets", dry, err)
		}
		for _, want := range []string{
			"secret /etc/openlibrary/secrets.yml: missing; put it there or at /etc/olimage/secrets/ol-web/etc/openlibrary/secrets.yml (activate links it), owned by openlibrary:",
			"secret /etc/openlibrary/infobase.yml: mode 0644, want 0640",
			"secret /etc/ssl/private/ol.key: missing",
			"secret /etc/coverstore.yml: a symlink to ../elsewhere, want a regular file",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		check(t, root, before, "after a refusal")
	}

	must(os.WriteFile(filepath.Join(root, "etc/openlibrary/secrets.yml"), []byte("db_password: p\n"), 0o600))
	must(os.Chmod(filepath.Join(root, "etc/openlibrary/infobase.yml"), 0o640))
	must(os.MkdirAll(filepath.Join(root, "etc/ssl/private"), 0o700))
	must(os.WriteFile(filepath.Join(root, "etc/ssl/private/ol.key"), []byte("k\n"), 0o600))
	must(os.Remove(filepath.Join(root, "etc/coverstore.yml")))
	must(os.WriteFile(filepath.Join(root, "etc/coverstore.yml"), []byte("k\n"), 0o600))
	activate(t, root, Options{})

	if os.Geteuid() == 0 {
		must(os.Chown(filepath.Join(root, "etc/coverstore.yml"), 2000, 2000))
		_, err := secretLinks(root, declaring(secrets...))
		if !errors.Is(err, ErrSecrets) || !strings.Contains(err.Error(), "secret /etc/coverstore.yml: owned by 2000:2000, want ") {
			t.Errorf("got %v, want the owner of /etc/coverstore.yml refused", err)
		}
	}
	if _, err := secretLinks(root, declaring(manifest.SecretPath{Path: "etc/../root/x", Mode: "0600"})); !errors.Is(err, ErrUnsafe) {
		t.Errorf("secret path leaving etc: got %v, want ErrUnsafe", err)
	}
}

// declaring is a manifest of role ol-web that declares secrets.
func declaring(secrets ...manifest.SecretPath) *manifest.Manifest {
	return &manifest.Manifest{Role: "ol-web", Activation: &manifest.Activation{Secrets: secrets}}
}

// hostCopy writes the VM's copy of the secret rel for role ol-web under
// root, owned by uid:gid with mode, its directories root's 0755.
func hostCopy(t *testing.T, root, rel string, uid, gid int, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(root, SecretsDir, "ol-web", rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(p); d != root; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // whatever the umask
	}
	if err := os.WriteFile(p, []byte("db_password: p\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretsLinked: a secret missing on the root disk is linked to the
// VM's copy in /etc/olimage/secrets/ROLE, journaled: a dry run plans the
// link, activate makes it and keeps it, refuses once the copy is wrong,
// status reports it, and deactivate removes the link and the directory
// it made, leaving the copy.
func TestSecretsLinked(t *testing.T) {
	testenv.RequireRoot(t, "a VM's copy of a secret, owned by root,")
	const rel = "etc/openlibrary/secrets.yml"
	const host = "/etc/olimage/secrets/ol-web/" + rel
	root, _ := newRoot(t, v1)
	editManifest(t, filepath.Join(root, "1"), func(m *manifest.Manifest) {
		m.Activation.Secrets = []manifest.SecretPath{{Path: rel, Owner: "openlibrary", Group: "openlibrary", UID: 2000, GID: 2000, Mode: "0600"}}
	})
	copyPath := hostCopy(t, root, rel, 2000, 2000, 0o600)
	before := snapshot(t, root)

	plan := dryRun(t, root, Options{}, false)
	for _, want := range []string{"mkdir etc/openlibrary", "link " + rel + " -> " + host} {
		if !slices.Contains(plan, want) {
			t.Errorf("dry run lacks %q:\n%s", want, strings.Join(plan, "\n"))
		}
	}
	activate(t, root, Options{})
	if got, err := os.Readlink(filepath.Join(root, rel)); err != nil || got != host {
		t.Fatalf("/%s: links to %q (%v), want %s", rel, got, err, host)
	}
	if b, err := os.ReadFile(filepath.Join(root, JournalFile)); err != nil || !strings.Contains(string(b), `"target": "`+host+`"`) {
		t.Errorf("journal does not record the link: %v\n%s", err, b)
	}
	st, err := ReadStatus(Options{Root: root, Volume: "/1"})
	want := []SecretStatus{{Path: rel, Owner: "openlibrary:openlibrary (2000:2000)", Mode: "0600", State: SecretOK, Link: host}}
	if err != nil || !st.OK() || !cmp.Equal(want, st.Secrets) {
		t.Fatalf("status: %v, findings %q, secrets (-want +got):\n%s", err, st.Findings, cmp.Diff(want, st.Secrets))
	}
	if rep := activate(t, root, Options{}); rep.Changed() {
		t.Errorf("activate again changed: %q", ops(rep))
	}

	if err := os.Chmod(copyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	const wrong = "secret /" + rel + ": a link to the VM's copy; " + host + ": mode 0644, want 0600"
	if _, err := Activate(ctx, Options{Root: root}); !errors.Is(err, ErrSecrets) || !strings.Contains(err.Error(), wrong) {
		t.Errorf("copy of mode 0644: got %v, want %q", err, wrong)
	}
	if st, _ := ReadStatus(Options{Root: root, Volume: "/1"}); st.OK() || !slices.Contains(st.Findings, wrong) || st.Secrets[0].State != SecretWrong {
		t.Errorf("status with a copy of mode 0644: findings %q, secrets %+v", st.Findings, st.Secrets)
	}
	os.Chmod(copyPath, 0o600)

	deactivate(t, root)
	check(t, root, before, "after deactivate")
}

// TestSecretsWhere: which of the secret's file on the root disk and the
// VM's copy activate takes, and the copies it refuses: anything in the
// way a root-owned directory chain not writable by others, that passes
// the same owner and mode test, would not be trusted.
func TestSecretsWhere(t *testing.T) {
	testenv.RequireRoot(t, "a VM's copy of a secret, owned by root,")
	const rel = "etc/openlibrary/secrets.yml"
	const host = "/etc/olimage/secrets/ol-web/" + rel
	sec := manifest.SecretPath{Path: rel, Owner: "openlibrary", UID: 2000, GID: 2000, Mode: "0600"}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		state SecretState
		want  string // in the refusal; "" when activate goes ahead
	}{
		{"neither", func(t *testing.T, root string) {}, SecretMissing,
			"secret /" + rel + ": missing; put it there or at " + host + " (activate links it), owned by openlibrary:2000 (2000:2000), mode 0600"},
		{"copy", func(t *testing.T, root string) { hostCopy(t, root, rel, 2000, 2000, 0o600) }, SecretUnlinked, ""},
		{"the root disk's first", func(t *testing.T, root string) {
			hostCopy(t, root, rel, 2000, 2000, 0o644)
			os.MkdirAll(filepath.Join(root, "etc/openlibrary"), 0o755)
			os.WriteFile(filepath.Join(root, rel), nil, 0o600)
			os.Chown(filepath.Join(root, rel), 2000, 2000)
		}, SecretOK, ""},
		{"copy of another owner", func(t *testing.T, root string) { hostCopy(t, root, rel, 0, 0, 0o600) }, SecretWrong,
			"secret /" + rel + ": " + host + ": owned by 0:0, want openlibrary:2000 (2000:2000)"},
		{"copy a symlink", func(t *testing.T, root string) {
			p := hostCopy(t, root, rel, 2000, 2000, 0o600)
			os.Rename(p, p+".real")
			os.Symlink("secrets.yml.real", p)
		}, SecretWrong, "secret /" + rel + ": " + host + ": a symlink to secrets.yml.real, want a regular file"},
		{"directory writable by others", func(t *testing.T, root string) {
			hostCopy(t, root, rel, 2000, 2000, 0o600)
			os.Chmod(filepath.Join(root, SecretsDir, "ol-web"), 0o777)
		}, SecretWrong, "secret /" + rel + ": /etc/olimage/secrets/ol-web: mode 0777 is writable by group or others"},
		{"directory its owner cannot search", func(t *testing.T, root string) {
			hostCopy(t, root, rel, 2000, 2000, 0o600)
			os.Chmod(filepath.Join(root, SecretsDir), 0o700)
		}, SecretWrong, "secret /" + rel + ": /etc/olimage/secrets: mode 0700: openlibrary cannot reach the secret through it; want 0711 or 0755"},
		{"directory of another owner", func(t *testing.T, root string) {
			hostCopy(t, root, rel, 2000, 2000, 0o600)
			os.Chown(filepath.Join(root, SecretsDir, "ol-web/etc"), 2000, 2000)
		}, SecretWrong, "secret /" + rel + ": /etc/olimage/secrets/ol-web/etc: owned by uid 2000, want root"},
		{"directory a symlink", func(t *testing.T, root string) {
			hostCopy(t, root, rel, 2000, 2000, 0o600)
			d := filepath.Join(root, SecretsDir, "ol-web")
			os.Rename(d, d+".real")
			os.Symlink("ol-web.real", d)
		}, SecretWrong, "secret /" + rel + ": /etc/olimage/secrets/ol-web: a symlink to ol-web.real; olimage reads the VM's secrets through no symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := newRoot(t, v1)
			editManifest(t, filepath.Join(root, "1"), func(m *manifest.Manifest) { m.Activation.Secrets = []manifest.SecretPath{sec} })
			tc.setup(t, root)
			before := snapshot(t, root)
			st, err := lookSecret(root, "ol-web", sec)
			if err != nil || st.State != tc.state {
				t.Errorf("lookSecret: %v, state %q, want %q", err, st.State, tc.state)
			}
			_, err = Activate(ctx, Options{Root: root})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("activate: %v", err)
				}
				// Linked to the copy if that was what there was.
				if after, err := lookSecret(root, "ol-web", sec); err != nil || after.State != SecretOK || after.Link != st.Link {
					t.Errorf("after activate: %v, %+v, want ok with link %q", err, after, st.Link)
				}
				return
			}
			if !errors.Is(err, ErrSecrets) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			check(t, root, before, "after a refusal")
			s, _ := ReadStatus(Options{Root: root, Volume: "/1"})
			if s.OK() || !slices.ContainsFunc(s.Findings, func(f string) bool { return strings.HasPrefix(f, tc.want) }) {
				t.Errorf("status findings %q, want %q", s.Findings, tc.want)
			}
		})
	}
}

// TestSecretsLinkConfined: activate links a secret to the VM's copy only
// where the image itself could link: not at a sensitive path the policy
// does not allow, not inside or over one of the plan's links.
func TestSecretsLinkConfined(t *testing.T) {
	testenv.RequireRoot(t, "a VM's copy of a secret, owned by root,")
	for _, tc := range []struct{ rel, want string }{
		{"etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key: refused: a sensitive path; /etc/olimage/policy.yaml does not allow it for role ol-web"},
		{"etc/new/sub/x.conf/key", "secret /etc/new/sub/x.conf/key: refused: the plan links /etc/new/sub/x.conf too"},
		{"etc/twice", "secret /etc/twice: refused: declared twice"},
	} {
		root, _ := newRoot(t, v1)
		editManifest(t, filepath.Join(root, "1"), func(m *manifest.Manifest) {
			m.Activation.Secrets = []manifest.SecretPath{{Path: tc.rel, Mode: "0600"}, {Path: "etc/twice", Mode: "0600"}, {Path: "etc/twice", Mode: "0600"}}
		})
		hostCopy(t, root, "etc/twice", 0, 0, 0o600)
		hostCopy(t, root, tc.rel, 0, 0, 0o600)
		before := snapshot(t, root)
		if _, err := Activate(ctx, Options{Root: root}); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("/%s: got %v, want %q", tc.rel, err, tc.want)
		}
		check(t, root, before, "after a refusal")
	}
}

// TestSecretsRecover: with the journal lost, recover removes the link
// activate made to the VM's copy of a secret, and leaves the copy.
func TestSecretsRecover(t *testing.T) {
	testenv.RequireRoot(t, "a VM's copy of a secret, owned by root,")
	const rel = "etc/openlibrary/secrets.yml"
	root, _ := newRoot(t, v1)
	editManifest(t, filepath.Join(root, "1"), func(m *manifest.Manifest) {
		m.Activation.Secrets = []manifest.SecretPath{{Path: rel, Mode: "0600"}}
	})
	hostCopy(t, root, rel, 0, 0, 0o600)
	base := snapshot(t, root)
	activate(t, root, Options{})
	if err := os.Remove(filepath.Join(root, JournalFile)); err != nil {
		t.Fatal(err)
	}
	rep, err := Recover(ctx, Options{Root: root})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if want := "unlink " + rel + " -> /etc/olimage/secrets/ol-web/" + rel; !slices.Contains(ops(rep), want) {
		t.Errorf("recover steps lack %q:\n%s", want, strings.Join(ops(rep), "\n"))
	}
	// Directories activate made stay, as for every recovery.
	check(t, root, edit(base, "etc/new/sub=dir", "opt/openlibrary=dir", "etc/openlibrary=dir"), "after recover")
}
