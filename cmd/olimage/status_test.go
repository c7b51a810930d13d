package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/manifest"
)

// TestStatusSecrets: status lists each secret the volume declares, in
// text and JSON, and exits 1 while one is missing or wrong; activate
// links one the VM keeps in /etc/olimage/secrets/ROLE.
func TestStatusSecrets(t *testing.T) {
	const rel = "etc/openlibrary/secrets.yml"
	const host = "/etc/olimage/secrets/ol-web/" + rel
	root := activationRoot(t)
	testfs.EditJSON(t, filepath.Join(root, "1", manifest.Path), func(m *manifest.Manifest) {
		m.Activation.Secrets = []manifest.SecretPath{{Path: rel, Owner: "openlibrary", UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Mode: "0600"}}
	})
	secret := func(t *testing.T, want int, state activate.SecretState, link string) {
		t.Helper()
		out, _, code := olimage(t, "status", "--root", root)
		if code != want || !regexp.MustCompile(`(?m)^secret +/`+rel+` +`+string(state)+regexp.QuoteMeta(link)+`$`).MatchString(out) {
			t.Errorf("status: exit %d, want %d and the secret %s%s:\n%s", code, want, state, link, out)
		}
		out, _, code = olimage(t, "status", "--root", root, "--json")
		var st activate.Status
		if err := json.Unmarshal([]byte(out), &st); code != want || err != nil || len(st.Secrets) != 1 || st.Secrets[0].State != state {
			t.Errorf("status --json: exit %d, want %d and the secret %s:\n%s", code, want, state, out)
		}
	}

	secret(t, exitFindings, activate.SecretMissing, "")
	_, errOut, code := olimage(t, "activate", "--root", root)
	if code != exitError || !strings.Contains(errOut, "olimage: error: secret /"+rel+": missing; put it there or at "+host) || !strings.Contains(errOut, "olimage: hint: put each secret at its path, or at /etc/olimage/secrets/ROLE/PATH") {
		t.Errorf("activate with the secret missing: exit %d\n%s", code, errOut)
	}
	os.MkdirAll(filepath.Join(root, "etc/openlibrary"), 0o755)
	if err := os.WriteFile(filepath.Join(root, rel), []byte("k: v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(root, rel), 0o644)
	secret(t, exitFindings, activate.SecretWrong, "")
	os.Chmod(filepath.Join(root, rel), 0o600)
	mustRun(t, "activate", "--root", root)
	secret(t, exitOK, activate.SecretOK, "")
	if out, _, _ := olimage(t, "status", "--root", root); !strings.Contains(out, "ok: 2 links, 1 secret in place\n") {
		t.Errorf("status with everything in place:\n%s", out)
	}

	if os.Geteuid() != 0 {
		return // the VM's copies must be owned by root
	}
	mustRun(t, "deactivate", "--root", root)
	os.RemoveAll(filepath.Join(root, "etc/openlibrary"))
	cp := filepath.Join(root, host)
	os.MkdirAll(filepath.Dir(cp), 0o755)
	if err := os.WriteFile(cp, []byte("k: v\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret(t, exitFindings, activate.SecretUnlinked, " -> "+host)
	out, errOut, code := olimage(t, "activate", "--root", root)
	if code != exitOK || !regexp.MustCompile(`(?m)^  link +/`+rel+` +`+host+`$`).MatchString(out) {
		t.Fatalf("activate: exit %d\n%s%s", code, out, errOut)
	}
	secret(t, exitOK, activate.SecretOK, " -> "+host)
}

// TestStatusJSONDocumented: every field of the document status --json
// prints is named in its section of docs/json.md.
func TestStatusJSONDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "## `olimage status --json`: `"+activate.StatusSchema+"`")
	section, _, _ = strings.Cut(section, "\n## ")
	if section == "" {
		t.Fatalf("docs/json.md has no section for %s", activate.StatusSchema)
	}
	for _, typ := range []any{activate.Status{}, activate.LinkStatus{}, activate.DeployStatus{}, activate.SecretStatus{}} {
		rt := reflect.TypeOf(typ)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "schema" {
				continue // every document has one, documented at the top
			}
			if !strings.Contains(section, `"`+name+`"`) && !strings.Contains(section, "`"+name+"`") {
				t.Errorf("%s.%s: docs/json.md's status section does not name %q", rt.Name(), rt.Field(i).Name, name)
			}
		}
	}
}
