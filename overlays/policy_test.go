package overlays

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/roles"
)

// The content policy names the overlay, the source file and the line of
// every finding, and allow: with a reason exempts a path.
func TestContentPolicy(t *testing.T) {
	dir := t.TempDir()
	role := `overlays:
  - {name: conf, dir: conf}
  - {name: data, tar: data.tar}
  - name: inline
    files:
      - path: etc/app/inline.ini
        content: "password = hunter2\n"
  - {name: app, deploy: {service: app, source: app, revision: r1}}
`
	writeFiles(t, dir, map[string]any{
		"olimage.yaml":         testFleetYAML + "policy: {forbid: [\"etc/**/*.bak\"], max_file_size: 100}\n",
		"roles/r.yaml":         role,
		"conf/etc/app/.env":    "secret=hunter2\n",
		"conf/etc/app/ok.yml":  "password: SET-FROM-ENVIRONMENT\n",
		"conf/etc/app/old.bak": "x",
		"conf/opt/big":         strings.Repeat("z", 101),
		"app/etc/keys.pem":     "comment\n-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",
		"data.tar": mkTar(
			tarMember{name: "etc/shared/", typ: '5', mode: 0o777},
			tarMember{name: "etc/shared/notes", mode: 0o666, body: "hi\n"},
		),
	})
	res, err := mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	err = res.Policy(context.Background())
	if !errors.Is(err, policy.ErrPolicy) {
		t.Fatalf("got %v, want an error wrapping policy.ErrPolicy", err)
	}
	wants := []string{
		`conf/etc/app/.env: secret file (overlay "conf", /etc/app/.env): an environment file`,
		`conf/etc/app/.env:1: secret (overlay "conf", /etc/app/.env): a literal value for secret`,
		`conf/etc/app/old.bak: forbidden (overlay "conf", /etc/app/old.bak): matches forbid glob "etc/**/*.bak" (olimage.yaml:`,
		`conf/opt/big: too large (overlay "conf", /opt/big): 101 bytes, over max_file_size 100`,
		`data.tar:etc/shared: world-writable (overlay "data", /etc/shared): mode 0777`,
		`data.tar:etc/shared/notes: world-writable (overlay "data", /etc/shared/notes): mode 0666`,
		`roles/r.yaml:6 (line 1 of its content): secret (overlay "inline", /etc/app/inline.ini): a literal value for password`,
		`app/etc/keys.pem:2: secret (overlay "app", /opt/openlibrary/deploys/app/r1/etc/keys.pem): a private key block`,
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range wants {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, w)
		}
		if !found {
			t.Errorf("no finding %q in:\n%s", w, err)
		}
	}
	if len(lines) != len(wants) {
		t.Errorf("got %d findings, want %d:\n%s", len(lines), len(wants), err)
	}

	// allow: exempts the paths it matches, and only those.
	writeFiles(t, dir, map[string]any{"roles/r.yaml": role + `policy:
  allow:
    - {path: "etc/shared/**", reason: "a drop box the app shares with its users"}
    - {path: etc/app/.env, reason: "test credentials of the staging database"}
`})
	res, err = mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	err = res.Policy(context.Background())
	if err == nil || strings.Contains(err.Error(), "etc/shared") || strings.Contains(err.Error(), ".env") || !strings.Contains(err.Error(), "old.bak") {
		t.Errorf("with allow: got %v, want only the findings outside etc/shared and .env", err)
	}
}

// allow: without a reason is refused where it is written.
func TestContentPolicyAllowNeedsReason(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]any{
		"olimage.yaml": testFleetYAML + "policy:\n  allow:\n    - {path: etc/x}\n",
		"roles/r.yaml": `overlays: [{name: a, files: [{path: etc/x, content: ""}]}]`,
	})
	f, err := roles.Load(dir)
	if err == nil {
		err = f.Err()
	}
	if err == nil || !strings.Contains(err.Error(), "olimage.yaml:7: policy: allow \"etc/x\" has no reason") {
		t.Fatalf("got %v, want olimage.yaml:7 naming the allow without a reason", err)
	}
}

// A setuid bit on a file of a directory source is refused unless a rule
// allows it; it used to be dropped without a word.
func TestDirSourceSetuid(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]any{
		"olimage.yaml":      testFleetYAML,
		"roles/r.yaml":      `overlays: [{name: a, dir: src}]`,
		"src/opt/bin/tool":  "+x #!/bin/sh\n",
		"src/opt/bin/other": "+x #!/bin/sh\n",
	})
	must(t, os.Chmod(filepath.Join(dir, "src/opt/bin/tool"), 0o755|os.ModeSetuid))
	_, err := mergeRole(t, dir)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), `opt/bin/tool: mode 4755 from overlay "a" has a setuid or setgid bit`) {
		t.Fatalf("got %v, want opt/bin/tool refused for its setuid bit", err)
	}
	writeFiles(t, dir, map[string]any{"roles/r.yaml": "overlays: [{name: a, dir: src}]\nrules: [{path: opt/bin/tool, setuid: true}]\n"})
	res, err := mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Tree.Entries {
		if e.Path() == "opt/bin/tool" && e.Mode != 0o4755 {
			t.Errorf("allowed setuid file has mode %04o, want 4755", e.Mode)
		}
	}
}

// A role's secrets are never in its image: an overlay that supplies one
// is refused, naming the declaration and the source.
func TestSecretInImage(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]any{
		"olimage.yaml": testFleetYAML,
		"roles/r.yaml": `overlays: [{name: conf, dir: conf}]
secrets:
  - {path: etc/app/secrets.yml, owner: app, mode: "0600"}
  - {path: etc/app/other.yml}
`,
		"conf/etc/app/secrets.yml": "db_password: SET-FROM-ENVIRONMENT\n",
	})
	res, err := mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	err = res.Policy(context.Background())
	if !errors.Is(err, ErrSecretInImage) || !strings.Contains(err.Error(), `roles/r.yaml:3: secret /etc/app/secrets.yml is supplied by overlay "conf" (conf/etc/app/secrets.yml)`) {
		t.Fatalf("got %v, want the secret refused at roles/r.yaml:3", err)
	}
	if strings.Contains(err.Error(), "other.yml") {
		t.Errorf("a secret no overlay supplies is refused: %v", err)
	}
	s := res.Role.Secrets
	if len(s) != 2 || s[0].UID != 999 || s[0].GID != 999 || s[0].Mode != 0o600 || s[1].Owner != "root" || s[1].Mode != 0o600 {
		t.Errorf("got secrets %+v, want app:app 0600 and root:root 0600", s)
	}
}

// Members of a compressed archive are scanned by the content policy as
// they are spooled, not read back for it: of one larger than the
// detector looks at, its first policy.ScanLimit bytes.
func TestSpoolScansMembers(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("# filler\n", 20000) + "token = abcdefghijk123\n"
	huge := strings.Repeat("# filler\n", policy.ScanLimit/9) + "api_key = zzzzzzzzzzzz\n" // past what is scanned
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(mkTar(
		tarMember{name: "etc/a/small.ini", body: "x\npassword = hunter2\n"},
		tarMember{name: "etc/a/big.ini", body: big},
		tarMember{name: "etc/a/huge.ini", body: huge},
		tarMember{name: "etc/a/clean", body: "hello\n"},
		tarMember{name: "etc/a/empty"},
	))
	must(t, zw.Close())
	writeFiles(t, dir, map[string]any{
		"olimage.yaml": testFleetYAML,
		"roles/r.yaml": "overlays:\n  - {name: data, tar: data.tar.gz}\n",
		"data.tar.gz":  gz.Bytes(),
	})
	res, err := mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for path, want := range map[string]int{"etc/a/small.ini": 1, "etc/a/big.ini": 1, "etc/a/huge.ini": 0, "etc/a/clean": 0, "etc/a/empty": 0} {
		e := res.Tree.Get(path)
		if e == nil {
			t.Fatalf("%s: not in the tree", path)
		}
		sc, ok := e.Content.(policy.Scanned)
		if !ok {
			t.Fatalf("%s: content %T was not scanned as it was spooled", path, e.Content)
		}
		if hits, scanned := sc.PolicyHits(); !scanned || len(hits) != want {
			t.Errorf("%s: PolicyHits() = %v, %v; want %d hits, scanned", path, hits, scanned, want)
		}
	}
	wantLines(t, res.Policy(context.Background()), []string{
		`data.tar.gz:etc/a/big.ini:20001: secret (overlay "data", /etc/a/big.ini): a literal value for token`,
		`data.tar.gz:etc/a/small.ini:2: secret (overlay "data", /etc/a/small.ini): a literal value for password`,
	})
}

// A directory source's files are read once: the read that hashes a file
// is what the content policy scans. Content swapped in after the merge
// (same size, same inode) is not what the policy judges: a secret hashed
// is found though it is gone now, and one written in later is not, as
// neither is read again. Of a file larger than the detector looks at,
// its first policy.ScanLimit bytes are scanned as they are hashed.
func TestDirScannedAsHashed(t *testing.T) {
	dir := t.TempDir()
	secret := "x\npassword = hunter2\n"
	clean := "x\nnothing to see..\n"
	fill := (policy.ScanLimit - 100) / 9 // lines of filler before the token, within what is scanned
	big := strings.Repeat("# filler\n", fill) + "token = abcdefghijk123\n" + strings.Repeat("# filler\n", 20000) + "api_key = zzzzzzzzzzzz\n"
	writeFiles(t, dir, map[string]any{
		"olimage.yaml":        testFleetYAML,
		"roles/r.yaml":        "overlays:\n  - {name: conf, dir: conf}\n",
		"conf/etc/a/gone.ini": secret,
		"conf/etc/a/late.ini": clean,
		"conf/etc/a/big.ini":  big,
	})
	res, err := mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"gone.ini": clean, "late.ini": secret} {
		f, err := os.OpenFile(filepath.Join(dir, "conf/etc/a", name), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt([]byte(body), 0)
		must(t, errors.Join(err, f.Close()))
	}
	for _, p := range []string{"etc/a/gone.ini", "etc/a/late.ini", "etc/a/big.ini"} {
		if _, ok := res.Tree.Get(p).Content.(policy.Scanned); !ok {
			t.Errorf("%s: content %T was not scanned as it was hashed", p, res.Tree.Get(p).Content)
		}
	}
	err = res.Policy(context.Background())
	want := []string{
		fmt.Sprintf(`conf/etc/a/big.ini:%d: secret`, fill+1) + ` (overlay "conf", /etc/a/big.ini): a literal value for token`,
		`conf/etc/a/gone.ini:2: secret (overlay "conf", /etc/a/gone.ini): a literal value for password`,
	}
	wantLines(t, err, want)
}

// wantLines checks that err has a line for each of want, starting with it.
func wantLines(t *testing.T, err error, want []string) {
	t.Helper()
	var got []string
	if err != nil {
		got = strings.Split(err.Error(), "\n")
	}
	if len(got) != len(want) {
		t.Fatalf("policy error:\n%v\nwant %d lines starting:\n%s", err, len(want), strings.Join(want, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("policy error line %d:\n%s\nwant it to start:\n%s", i+1, got[i], w)
		}
	}
}

// A plain tar archive's members are read once too: the policy judges
// what was hashed, not what the archive holds when it runs.
func TestPlainTarScannedAsHashed(t *testing.T) {
	dir := t.TempDir()
	secret, clean := "x\npassword = hunter2\n", "x\nnothing to see..\n"
	archive := func(gone, late string) []byte {
		return mkTar(tarMember{name: "etc/a/gone.ini", body: gone}, tarMember{name: "etc/a/late.ini", body: late})
	}
	writeFiles(t, dir, map[string]any{
		"olimage.yaml": testFleetYAML,
		"roles/r.yaml": "overlays:\n  - {name: data, tar: data.tar}\n",
		"data.tar":     archive(secret, clean),
	})
	res, err := mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data.tar"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(archive(clean, secret), 0) // the same members at the same places
	must(t, errors.Join(err, f.Close()))
	wantLines(t, res.Policy(context.Background()), []string{
		`data.tar:etc/a/gone.ini:2: secret (overlay "data", /etc/a/gone.ini): a literal value for password`,
	})
}
