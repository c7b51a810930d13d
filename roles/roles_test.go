package roles

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/internetarchive/olimage/internal/testfs"

	"github.com/google/go-cmp/cmp"
)

func writeFleet(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, files)
	return dir
}

const goodFleet = "fleet: t\nepoch: 2024-01-01T00:00:00Z\nowners: {app: 999}\ngroups: {app: 998}\n"

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each must appear, with the fleet dir stripped
	}{
		{
			name:  "unknown key in a role",
			files: map[string]string{"roles/ol-web.yaml": "overlays:\n  - name: a\n    dir: a\n    overlay: b\n"},
			want:  []string{`roles/ol-web.yaml:4: unknown key "overlay"`},
		},
		{
			name:  "unknown key in the fleet file",
			files: map[string]string{FleetFile: goodFleet + "defualts: {}\n", "roles/r.yaml": "overlays: [{name: a, dir: a}]\n"},
			want:  []string{`olimage.yaml:5: unknown key "defualts"`},
		},
		{
			name:  "wrong types",
			files: map[string]string{"roles/r.yaml": "abstract: maybe\noverlays: {name: a}\n"},
			want:  []string{`roles/r.yaml:1: value "maybe": want true or false`, `roles/r.yaml:2: value: want a list, got a mapping`},
		},
		{
			name:  "malformed yaml",
			files: map[string]string{"roles/r.yaml": "overlays:\n  - name: a\n   dir: [\n"},
			want:  []string{`roles/r.yaml:1: did not find expected '-' indicator`},
		},
		{
			name: "extends cycle",
			files: map[string]string{
				"roles/a.yaml": "extends: b\noverlays: [{name: a, dir: a}]\n",
				"roles/b.yaml": "extends: a\noverlays: [{name: b, dir: b}]\n",
			},
			want: []string{`roles/b.yaml:1: extends cycle: a -> b -> a`, `roles/a.yaml:1: extends cycle: b -> a -> b`},
		},
		{
			name:  "extends unknown role",
			files: map[string]string{"roles/a.yaml": "extends: nope\noverlays: [{name: a, dir: a}]\n"},
			want:  []string{`roles/a.yaml:1: extends unknown role "nope"`},
		},
		{
			name: "bad values, each with its line",
			files: map[string]string{"roles/r.yaml": `overlays:
  - name: a
    dir: a
    tar: b.tar
  - name: b
    files:
      - {path: /etc/x, content: x}
      - {path: ../x, dir: true}
      - {path: x, content: y, symlink: z}
    conflict: sometimes
    rules:
      - {path: "x", owner: nobody, mode: "999"}
      - {path: "y"}
  - name: a
    dir: c
image: {label: a-label-longer-than-16, size: lots, headroom: many}
`},
			want: []string{
				`roles/r.yaml:2: overlay "a" has 2 sources (dir, tar); want one`,
				`roles/r.yaml:7: path: "/etc/x" is absolute`,
				`roles/r.yaml:8: path: "../x" leaves the volume root`,
				`roles/r.yaml:9: x: want exactly one of content, dir: true, symlink (got 2)`,
				`roles/r.yaml:10: conflict: "sometimes": want override, identical or error`,
				`roles/r.yaml:12: owner "nobody" is not in olimage.yaml owners`,
				`roles/r.yaml:12: mode: "999" is not an octal mode`,
				`roles/r.yaml:13: rule for "y" sets nothing`,
				`roles/r.yaml:16: label "a-label-longer-than-16" is 22 bytes; ext4 allows 16`,
				`roles/r.yaml:16: size: "lots" is not a size`,
				`roles/r.yaml:16: headroom: "many": want a percentage`,
			},
		},
		{
			name:  "duplicate overlay names",
			files: map[string]string{"roles/r.yaml": "overlays:\n  - {name: a, dir: a}\n  - {name: a, dir: b}\n"},
			want:  []string{`roles/r.yaml:3: overlay "a" already declared at`},
		},
		{
			name:  "bad epoch",
			files: map[string]string{FleetFile: "fleet: t\nepoch: yesterday\n", "roles/r.yaml": "overlays: [{name: a, dir: a}]\n"},
			want:  []string{`olimage.yaml:2: epoch: "yesterday": want RFC 3339`},
		},
		{
			name:  "control characters in inline paths and targets",
			files: map[string]string{"roles/r.yaml": "overlays:\n  - name: a\n    files:\n      - {path: \"etc/a\\nb\", content: x}\n      - {path: etc/l, symlink: \"x\\ty\"}\n"},
			want:  []string{`roles/r.yaml:4: path: "etc/a\nb" contains the control character '\n'`, `roles/r.yaml:5: symlink: "x\ty" contains the control character '\t'`},
		},
		{
			name: "control characters in names, long inline paths",
			files: map[string]string{"roles/r.yaml": "overlays:\n  - name: \"a\\rb\"\n    files:\n      - {path: \"opt/" + strings.Repeat("d/", 2100) + "x\", content: x}\n      - {path: \"opt/" + strings.Repeat("n", 256) + "\", content: x}\n" +
				"  - {name: d, deploy: {service: \"s\\x1b\", source: s}}\n"},
			want: []string{
				`roles/r.yaml:2: overlay name "a\rb": want no slashes, spaces or control characters`,
				`roles/r.yaml:4: path: path is 4205 bytes; olimage allows 4096 (PATH_MAX)`,
				`roles/r.yaml:5: path: a name in "opt/` + strings.Repeat("n", 56) + `"... is 256 bytes; ext4 allows 255`,
				`roles/r.yaml:6: deploy: service "s\x1b": want a plain name`,
			},
		},
		{
			name:  "bad source limits",
			files: map[string]string{FleetFile: goodFleet + "sources:\n  allow_outside: [\"/srv/[\"]\n  max_unpacked: lots\n  max_ratio: 0.5\n", "roles/r.yaml": "overlays: [{name: a, dir: a}]\n"},
			want: []string{
				`olimage.yaml:6: allow_outside: "srv/[": syntax error in pattern`,
				`olimage.yaml:7: max_unpacked: "lots" is not a size`,
				`olimage.yaml:8: max_ratio: 0.5: want 1 or more`,
			},
		},
		{
			name:  "bad top-level names",
			files: map[string]string{FleetFile: goodFleet + "volume:\n  top_level: [opt, a/b]\n", "roles/r.yaml": "overlays: [{name: a, dir: a}]\n"},
			want: []string{
				`olimage.yaml:6: top_level: "opt" is always allowed; list only other names`,
				`olimage.yaml:6: top_level: "a/b": want a name at the volume root, such as srv`,
			},
		},
		{
			name:  "no roles",
			files: map[string]string{},
			want:  []string{`roles: no roles (want roles/*.yaml)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{FleetFile: goodFleet}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := writeFleet(t, files)
			err := loadErr(dir)
			if err == nil {
				t.Fatal("got no error")
			}
			got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("error lacks %q; got:\n%s", w, got)
				}
			}
		})
	}
}

// loadErr loads the fleet in dir and returns every problem found.
func loadErr(dir string) error {
	f, err := Load(dir)
	if err != nil {
		return err
	}
	return f.Err()
}

// TestLoadBroken checks Load's contract: a role's errors are that role's
// (Broken), the fleet's own concern every role (Problems), and Load itself
// fails only without a fleet.
func TestLoadBroken(t *testing.T) {
	files := map[string]string{
		FleetFile:      goodFleet,
		"roles/a.yaml": "overlays: [{name: a, dir: a}]\n",
		"roles/b.yaml": "overlays: [{name: b, dir: b}]\nimage: {labl: x}\n",
		"roles/c.yaml": "extends: b\noverlays: [{name: c, dir: c}]\n",
		"roles/z.yaml": "overlays: [{name: z, dir: z}]\nsize: 1\n",
	}
	dir := writeFleet(t, files)
	f, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v, want the problems kept in the fleet", err)
	}
	if got := f.RoleNames(true); !cmp.Equal(got, []string{"a"}) {
		t.Errorf("roles %v, want [a]", got)
	}
	var broken []string
	for name := range f.Broken {
		broken = append(broken, name)
	}
	sort.Strings(broken)
	if !cmp.Equal(broken, []string{"b", "c", "z"}) || len(f.Problems) != 0 {
		t.Errorf("broken %v, problems %v; want b, c and z, and none", broken, f.Problems)
	}
	if _, err := f.Role("a"); err != nil {
		t.Errorf("Role(a): %v, want a (other roles' errors do not matter)", err)
	}
	_, err = f.Role("b")
	if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), `roles/b.yaml:2: unknown key "labl"`) || strings.Contains(err.Error(), "c.yaml") {
		t.Errorf("Role(b) = %v, want ErrBroken with b's errors only", err)
	}
	if err := f.Broken["c"]; err == nil || !strings.Contains(err.Error(), `roles/c.yaml:1: extends "b", which has errors`) {
		t.Errorf("Broken[c] = %v", err)
	}
	// A role that extends a broken one is refused with the parent's errors
	// too: they are why.
	if _, err = f.Role("c"); !strings.Contains(err.Error(), `roles/b.yaml:2: unknown key "labl"`) || !strings.Contains(err.Error(), `roles/c.yaml:1: extends "b"`) || strings.Contains(err.Error(), "z.yaml") {
		t.Errorf("Role(c) = %v, want c's and b's errors", err)
	}
	// Err lists everything in the order found: files that do not decode,
	// then roles that do not resolve.
	want := []string{`roles/b.yaml:2`, `roles/z.yaml:2`, `roles/c.yaml:1`}
	var got []string
	for _, line := range strings.Split(f.Err().Error(), "\n") {
		rel := strings.TrimPrefix(line, dir+string(filepath.Separator))
		got = append(got, rel[:strings.Index(rel, ": ")])
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Err() (-want +got):\n%s", d)
	}

	files[FleetFile] = strings.Replace(goodFleet, "2024-01-01T00:00:00Z", "soon", 1)
	if f, err = Load(writeFleet(t, files)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Role("a"); len(f.Problems) != 1 || err == nil || !strings.Contains(err.Error(), "epoch") {
		t.Errorf("problems %v, Role(a) = %v; want the epoch's error, for every role", f.Problems, err)
	}
	if err := f.Err(); err == nil || !strings.Contains(strings.SplitN(err.Error(), "\n", 2)[0], "epoch") {
		t.Errorf("Err() = %v, want the fleet's problem first", err)
	}
}

func TestLoadMissingFleet(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no fleet here (want olimage.yaml and roles/*.yaml)") {
		t.Fatalf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := writeFleet(t, map[string]string{
		FleetFile: goodFleet + "defaults:\n  file_mode: \"0640\"\n  image: {headroom: 10%, journal: false}\nrules: [{path: \"opt/**\", owner: app}]\n",
		"roles/base.yaml": `abstract: true
image: {size: 1GiB, inode_headroom: 500}
rules: [{path: "opt/x", mode: "0755", group: app}]
overlays:
  - {name: base, dir: base}
`,
		"roles/web.yaml": `extends: base
description: web
image: {label: web-vol}
overlays:
  - name: ol
    deploy: {service: openlibrary, source: src}
`,
	})
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Epoch != 1704067200 || f.Defaults.FileMode != 0o640 || f.Defaults.DirMode != 0o755 {
		t.Errorf("fleet epoch %d, modes %o %o", f.Epoch, f.Defaults.FileMode, f.Defaults.DirMode)
	}
	if s := f.Sources; s.MaxUnpacked != DefaultMaxUnpacked || s.MaxRatio != DefaultMaxRatio || s.AllowOutside != nil {
		t.Errorf("sources %+v, want the defaults", s)
	}
	f2, err := Load(writeFleet(t, map[string]string{
		FleetFile:      goodFleet + "sources: {allow_outside: [/srv/**], max_unpacked: 2GiB, max_ratio: 50}\n",
		"roles/r.yaml": "overlays: [{name: a, dir: a}]\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s := f2.Sources; s.MaxUnpacked != 2<<30 || s.MaxRatio != 50 || len(s.AllowOutside) != 1 || s.AllowOutside[0].Pattern != "/srv/**" {
		t.Errorf("sources %+v", s)
	}
	if got, want := f.RoleNames(false), []string{"web"}; !cmp.Equal(got, want) {
		t.Errorf("RoleNames(false) = %v, want %v", got, want)
	}
	web, err := f.Role("web")
	if err != nil {
		t.Fatal(err)
	}
	want := Image{Label: "web-vol", Size: 1 << 30, Headroom: Amount{Percent: 10}, InodeHeadroom: Amount{Value: 500}, Journal: false}
	if d := cmp.Diff(want, web.Image); d != "" {
		t.Errorf("image (-want +got):\n%s", d)
	}
	var names []string
	for _, o := range web.Overlays {
		names = append(names, o.Name+":"+string(o.Kind))
	}
	if d := cmp.Diff([]string{"base:dir", "ol:deploy"}, names); d != "" {
		t.Errorf("overlays (-want +got):\n%s", d)
	}
	ol := web.Overlays[1]
	if ol.Deploy.Link != "opt/openlibrary/openlibrary" || !ol.Deploy.Active || ol.Source != filepath.Join(dir, "src") {
		t.Errorf("deploy %+v, source %s", ol.Deploy, ol.Source)
	}
	if len(web.Rules) != 1 || *web.Rules[0].Mode != 0o755 || *web.Rules[0].GID != 998 {
		t.Errorf("rules %+v", web.Rules)
	}
	if _, err := f.Role("nope"); err == nil || !strings.Contains(err.Error(), `no such role: "nope" (have: base, web)`) {
		t.Errorf("Role(nope) = %v", err)
	}
}

func TestSourceDateEpoch(t *testing.T) {
	dir := writeFleet(t, map[string]string{FleetFile: goodFleet, "roles/r.yaml": "overlays: [{name: a, dir: a}]\n"})
	t.Setenv("SOURCE_DATE_EPOCH", "42")
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Epoch != 42 {
		t.Errorf("epoch %d, want 42", f.Epoch)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "soon")
	if err := loadErr(dir); err == nil || !strings.Contains(err.Error(), `SOURCE_DATE_EPOCH="soon"`) {
		t.Errorf("got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "512MiB": 512 << 20, "2G": 2 << 30, "1.5GiB": 3 << 29, "10MB": 10e6} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "lots", "1XB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func FuzzLoadRole(f *testing.F) {
	f.Add("overlays:\n  - {name: a, dir: a, rules: [{path: x, mode: \"0644\"}]}\n")
	f.Add("extends: r\nimage: {size: 1G}\n")
	f.Add("overlays: [{name: d, deploy: {service: s, source: x}}]\n")
	f.Add("overlays:\n  - &o {name: a, files: [&f {path: a, content: b}, *f, *f]}\n  - *o\n")
	f.Add("overlays: [{name: a, files: [{path: \"etc/a\\nb\", symlink: \"x\\ty\"}]}]\n")
	f.Fuzz(func(t *testing.T, role string) {
		dir := writeFleet(t, map[string]string{FleetFile: goodFleet, "roles/r.yaml": role})
		Load(dir) // must not panic or hang
	})
}

// Aliases are checked where their anchors are, once: a few kilobytes of
// aliases to aliases would otherwise be checked millions of times.
func TestCheckAliasesOnce(t *testing.T) {
	const n = 2000
	var b strings.Builder
	b.WriteString("overlays:\n  - &o {name: a, files: [&f {path: a, content: b}")
	b.WriteString(strings.Repeat(", *f", n))
	b.WriteString("]}\n")
	b.WriteString(strings.Repeat("  - *o\n", n))
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	c := &checker{file: "r.yaml"}
	c.check(doc.Content[0], reflect.TypeOf(rawRole{}))
	// The document has about 3n nodes; followed at every use, the aliases
	// come to n*n.
	if c.visits > 4*n {
		t.Errorf("checked %d nodes of a document of about %d", c.visits, 3*n)
	}
	if len(c.errs) != 0 {
		t.Errorf("errors: %v", c.errs)
	}
}

// Fleet files are regular files of bounded size; the error names the file.
func TestFleetFileLimits(t *testing.T) {
	dir := writeFleet(t, map[string]string{FleetFile: goodFleet, "roles/ok.yaml": "overlays: [{name: a, dir: a}]\n"})
	big := filepath.Join(dir, "roles", "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("overlays: []\n")
	f.Truncate(MaxFileSize + 1) // sparse: no disk used
	f.Close()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "roles", "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	err = loadErr(dir)
	if err == nil {
		t.Fatal("got no error")
	}
	for _, want := range []string{
		big + ": 16777217 bytes; a fleet file may have at most 16777216 (16 MiB)",
		filepath.Join(dir, "roles", "zero.yaml") + ": not a regular file",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q; got:\n%v", want, err)
		}
	}
}

func TestSecretsRefused(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`{path: opt/openlibrary/secrets.yml}`, "want a path below etc/"},
		{`{path: etc/olimage/x}`, "olimage keeps its own configuration there"},
		{`{path: etc/../x}`, "want a clean path"},
		{`{path: etc/x, owner: nobody}`, `owner "nobody" is not in olimage.yaml owners`},
		{`{path: etc/x, mode: "999"}`, "secret mode"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			dir := writeFleet(t, map[string]string{
				"olimage.yaml": "fleet: t\n",
				"roles/r.yaml": "overlays: [{name: a, files: [{path: etc/y, content: y}]}]\nsecrets:\n  - " + tc.yaml + "\n",
			})
			err := loadErr(dir)
			if err == nil || !strings.Contains(err.Error(), "roles/r.yaml:3: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want roles/r.yaml:3 and %q", err, tc.want)
			}
		})
	}
}
