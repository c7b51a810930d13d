package roles

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestState(t *testing.T) {
	dir := writeFleet(t, map[string]string{
		FleetFile: "fleet: t\nepoch: 2024-01-01T00:00:00Z\nowners: {postgres: 105, app: 2000}\ngroups: {postgres: 105}\n",
		"roles/base.yaml": `abstract: true
state:
  - {path: /var/log/openlibrary, owner: app, mode: "0750"}
overlays: [{name: a, dir: a}]
`,
		"roles/db.yaml": `extends: base
state:
  - {path: /var/lib/postgresql/15/main, owner: postgres, mode: "0700"}
  - path: /srv/dumps
`,
	})
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := f.Role("db")
	want := []State{
		{Path: "var/log/openlibrary", Owner: "app", Group: "root", UID: 2000, GID: 0, Mode: 0o750},
		{Path: "var/lib/postgresql/15/main", Owner: "postgres", Group: "postgres", UID: 105, GID: 105, Mode: 0o700},
		{Path: "srv/dumps", Owner: "root", Group: "root", Mode: 0o755},
	}
	if d := cmp.Diff(want, db.State, cmpopts.IgnoreFields(State{}, "Pos")); d != "" {
		t.Errorf("state (-want +got):\n%s", d)
	}

	for _, tc := range []struct{ state, want string }{
		{`[{path: var/lib/x}]`, `roles/r.yaml:1: state path "var/lib/x": want an absolute path`},
		{`[{path: /etc/shadow}]`, `roles/r.yaml:1: state path /etc/shadow: want a path below /var/lib/, /var/cache/, /var/log/, /var/spool/, /srv/`},
		{`[{path: /var/lib/../../root}]`, `state path "/var/lib/../../root": want a clean absolute path`},
		{`[{path: /var/lib/olimage/x}]`, `state path /var/lib/olimage/x: olimage keeps its own state there`},
		{`[{path: /var/lib/x, owner: nobody}]`, `owner "nobody" is not in olimage.yaml owners`},
		{`[{path: /var/lib/x, mode: "9"}]`, `state mode:`},
		{"\n  - {path: /var/lib/x}\n  - {path: /var/lib/x}", `roles/r.yaml:3: state path /var/lib/x already declared at`},
		{`[{path: /var/lib/x, size: 1}]`, `unknown key "size"`},
	} {
		dir := writeFleet(t, map[string]string{FleetFile: goodFleet, "roles/r.yaml": "state: " + tc.state + "\noverlays: [{name: a, dir: a}]\n"})
		err := loadErr(dir)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""), tc.want) {
			t.Errorf("state %s: got %v, want %q", tc.state, err, tc.want)
		}
	}
}
