package activate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	editManifest(t, filepath.Join(root, "1"), func(m *manifest.Image) { m.Activation.Secrets = secrets })
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
			"secret /etc/openlibrary/secrets.yml: missing; put it there, owned by openlibrary:",
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
		err := checkSecrets(root, secrets)
		if !errors.Is(err, ErrSecrets) || !strings.Contains(err.Error(), "secret /etc/coverstore.yml: owned by 2000:2000, want ") {
			t.Errorf("got %v, want the owner of /etc/coverstore.yml refused", err)
		}
	}
	if err := checkSecrets(root, []manifest.SecretPath{{Path: "etc/../root/x", Mode: "0600"}}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("secret path leaving etc: got %v, want ErrUnsafe", err)
	}
}
