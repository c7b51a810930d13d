package activate

import (
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// FuzzPlanChecks feeds a volume's manifest, which whoever made the image
// controls, to the checks activate runs before changing anything: none
// panics, and a plan they pass links only the image's own opt/ and etc/
// paths, each to itself; and the links to the VM's copies of declared
// secrets stay below etc/ and point into the role's own directory of
// SecretsDir.
func FuzzPlanChecks(f *testing.F) {
	root := f.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	copyOf := filepath.Join(root, SecretsDir, "r/etc/app/secret.yml")
	os.MkdirAll(filepath.Dir(copyOf), 0o755)
	os.WriteFile(copyOf, []byte("k: v\n"), 0o600)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nol:x:999:999::/opt/ol:/bin/sh\n"), 0o644)
	for _, links := range [][]manifest.Link{
		{{Path: "etc/nginx/nginx.conf", Target: "etc/nginx/nginx.conf"}, {Path: "opt/openlibrary", Target: "opt/openlibrary"}},
		{{Path: "root/.ssh/authorized_keys", Target: "etc/motd"}},
		{{Path: "etc/ssh/sshd_config", Target: "etc/ssh/sshd_config"}},
		{{Path: "opt/ol", Target: "opt/ol"}, {Path: "../x", Target: "/etc"}},
	} {
		m := manifest.Manifest{Schema: manifest.ImageSchema, Role: "r", Activation: &manifest.Activation{Mount: "/1", Links: links}}
		for _, l := range links {
			m.Entries = append(m.Entries, manifest.Entry{Path: l.Target, Type: "file", Owner: "ol", UID: 999})
		}
		b, _ := json.Marshal(m)
		f.Add(b)
		m.Activation.Secrets = []manifest.SecretPath{{Path: "etc/app/secret.yml", UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Mode: "0600"}, {Path: "etc/../r/x", Mode: "0600"}}
		b, _ = json.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m manifest.Manifest
		if json.Unmarshal(b, &m) != nil || m.Activation == nil {
			return
		}
		links, _ := secretLinks(root, &m)
		for _, l := range links {
			if tree.CheckSecretPath(l.Path) != nil || l.Target != "/"+path.Join(SecretsDir, m.Role, l.Path) || !strings.HasPrefix(path.Clean(l.Target), "/"+SecretsDir+"/"+m.Role+"/") {
				t.Fatalf("secret linked: %+v, role %q", l, m.Role)
			}
		}
		err := errors.Join(checkConfined(&m), checkPlan(m.Activation, "/1"), checkSensitive(root, &m))
		if err != nil {
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("a refusal that is not ErrUnsafe: %v", err)
			}
			return
		}
		for _, l := range m.Activation.Links {
			top, _, _ := strings.Cut(l.Path, "/")
			if l.Path != l.Target || top != "opt" && top != "etc" || l.Path == "opt/ol" || strings.HasPrefix(l.Path, "etc/ssh") {
				t.Fatalf("passed: %+v", l)
			}
		}
		_ = checkAccounts(root, &m)
	})
}
