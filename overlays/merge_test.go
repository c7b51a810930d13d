package overlays

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

const testFleetYAML = `fleet: test
epoch: 1000
owners: {app: 999}
groups: {app: 999}
`

// writeFiles writes a fleet into dir. Keys ending in "/" are directories,
// values starting with "-> " are symlinks, values starting with "+x " are
// executable files, and values of type []byte are tar archives.
func writeFiles(t *testing.T, dir string, files map[string]any) {
	t.Helper()
	for name, v := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch v := v.(type) {
		case string:
			switch {
			case strings.HasPrefix(v, "-> "):
				err = os.Symlink(strings.TrimPrefix(v, "-> "), p)
			case strings.HasPrefix(v, "+x "):
				err = os.WriteFile(p, []byte(strings.TrimPrefix(v, "+x ")), 0o755)
			default:
				err = os.WriteFile(p, []byte(v), 0o644)
			}
		case []byte:
			err = os.WriteFile(p, v, 0o644)
		default:
			t.Fatalf("%s: unsupported value %T", name, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// mergeRole loads the fleet in dir and merges role r.
// mergeFiles writes files into a new fleet directory and merges role
// "r" of it, as mergeRole does.
func mergeFiles(t *testing.T, files map[string]any) (*Result, error) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	return mergeRole(t, dir)
}

func mergeRole(t *testing.T, dir string) (*Result, error) {
	t.Helper()
	f, err := roles.Load(dir)
	if err != nil {
		return nil, err
	}
	r, err := f.Role("r")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Merge(context.Background(), f, r)
	if err == nil {
		t.Cleanup(func() { res.Close() })
	}
	return res, err
}

// listing renders a tree as one line per entry.
func listing(t *tree.Tree) []string {
	var out []string
	for _, e := range t.Entries {
		line := fmt.Sprintf("%s %s %04o %d:%d %s", e.Path(), e.Type, e.Mode, e.UID, e.GID, e.Overlay())
		if e.Target != "" {
			line += " -> " + e.Target
		}
		if e.Type == tree.File {
			line += " " + e.Digest.String()[:8]
		}
		if len(e.Shadowed()) > 0 {
			line += " shadows " + strings.Join(e.Shadowed(), ",")
		}
		if e.Type != tree.Hardlink {
			for i, x := range e.Xattrs() {
				if i == 0 {
					line += " xattrs"
				}
				line += " " + x.Name
			}
		}
		out = append(out, line)
	}
	return out
}

// capSetuid is a security.capability value granting cap_setuid+ep
// (VFS_CAP_REVISION_2: magic and flags, then permitted and inheritable
// sets of two 32-bit words each).
var capSetuid = string([]byte{0x01, 0x00, 0x00, 0x02, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// sha8 is the first 8 hex digits of the sha256 of s.
func sha8(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:4])
}

type tarMember struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	pax        map[string]string
}

// mkTar builds a tar archive in memory; a bad member is a bug in the test.
func mkTar(members ...tarMember) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := m.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: m.name, Linkname: m.link, Typeflag: typ, Mode: mode, Size: int64(len(m.body)), PAXRecords: m.pax, Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(m.body)); err != nil {
				panic(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name    string
		role    string
		files   map[string]any
		want    []string
		wantErr string // substring; the error must also wrap errIs if set
		errIs   error
	}{
		{
			name: "later overlay overrides and records what it shadowed",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b}
`,
			files: map[string]any{"a/opt/x": "one", "a/opt/y": "only a", "b/opt/x": "two"},
			want: []string{
				"opt dir 0755 0:0 b shadows a",
				"opt/x file 0644 0:0 b " + sha8("two") + " shadows a",
				"opt/y file 0644 0:0 a " + sha8("only a"),
			},
		},
		{
			name:  "executable bit kept, other host mode bits not",
			role:  `overlays: [{name: a, dir: a}]`,
			files: map[string]any{"a/bin/run": "+x #!/bin/sh", "a/bin/data": "d"},
			want: []string{
				"bin dir 0755 0:0 a",
				"bin/data file 0644 0:0 a " + sha8("d"),
				"bin/run file 0755 0:0 a " + sha8("#!/bin/sh"),
			},
		},
		{
			name: "whiteout removes a lower path, opaque directory its lower children",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b}
`,
			files: map[string]any{
				"a/etc/keep": "k", "a/etc/gone": "g", "a/var/old1": "1", "a/var/old2": "2",
				"b/etc/.wh.gone": "", "b/var/.wh..wh..opq": "", "b/var/new": "n",
			},
			want: []string{
				"etc dir 0755 0:0 b shadows a",
				"etc/keep file 0644 0:0 a " + sha8("k"),
				"var dir 0755 0:0 b shadows a",
				"var/new file 0644 0:0 b " + sha8("n"),
			},
		},
		{
			name: "remove glob takes subtrees and allows a type change",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b, remove: ["opt/geo", "**/*.pyc"]}
`,
			files: map[string]any{
				"a/opt/geo/GeoIP.dat": "dat", "a/opt/m.pyc": "c", "a/opt/lib/n.pyc": "c", "a/opt/lib/n.py": "p",
				"b/opt/geo": "-> /srv/geo",
			},
			want: []string{
				"opt dir 0755 0:0 b shadows a",
				"opt/geo symlink 0777 0:0 b -> /srv/geo",
				"opt/lib dir 0755 0:0 a",
				"opt/lib/n.py file 0644 0:0 a " + sha8("p"),
			},
		},
		{
			name: "directory replaced by a file without removal",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b}
`,
			files:   map[string]any{"a/opt/x/f": "f", "b/opt/x": "file now"},
			wantErr: `opt/x: overlay "b" replaces a dir from overlay "a" with a file; remove it first`,
			errIs:   ErrConflict,
		},
		{
			name: "file replaced by a directory without removal",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b}
`,
			files:   map[string]any{"a/opt/x": "f", "b/opt/x/f": "f"},
			wantErr: `opt/x: overlay "b" replaces a file from overlay "a" with a dir`,
			errIs:   ErrConflict,
		},
		{
			name: "path below a symlink of a lower overlay",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b}
`,
			files:   map[string]any{"a/opt/link": "-> /tmp", "b/opt/link/evil": "x"},
			wantErr: `opt/link/evil: overlay "b" adds opt/link/evil below opt/link, a symlink from overlay "a"`,
			errIs:   ErrConflict,
		},
		{
			name: "identical policy accepts equal entries",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b, conflict: identical}
`,
			files: map[string]any{"a/x": "same", "b/x": "same"},
			want:  []string{"x file 0644 0:0 b " + sha8("same") + " shadows a"},
		},
		{
			name: "identical policy refuses different content",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b, conflict: identical}
`,
			files:   map[string]any{"a/x": "one", "b/x": "two"},
			wantErr: `x: overlay "b" differs from overlay "a" (content) and the policy is "identical"`,
			errIs:   ErrConflict,
		},
		{
			name: "identical policy refuses different modes",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b, conflict: identical}
`,
			files:   map[string]any{"a/x": "same", "b/x": "+x same"},
			wantErr: `x: overlay "b" differs from overlay "a" (mode 0755 vs 0644)`,
			errIs:   ErrConflict,
		},
		{
			name: "error policy refuses any shadowing, directories merge",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b, conflict: error}
`,
			files:   map[string]any{"a/opt/x": "one", "b/opt/x": "one", "b/opt/y": "new"},
			wantErr: `opt/x: supplied by overlay "a" and again by overlay "b", whose conflict policy is "error"`,
			errIs:   ErrConflict,
		},
		{
			name: "per-glob policy: last matching glob wins",
			role: `overlays:
  - {name: a, dir: a}
  - name: b
    dir: b
    conflicts:
      - {path: "etc/**", policy: error}
      - {path: "etc/ok/*", policy: override}
`,
			files: map[string]any{"a/etc/ok/x": "1", "b/etc/ok/x": "2"},
			want: []string{
				"etc dir 0755 0:0 b shadows a",
				"etc/ok dir 0755 0:0 b shadows a",
				"etc/ok/x file 0644 0:0 b " + sha8("2") + " shadows a",
			},
		},
		{
			name: "per-glob error policy",
			role: `overlays:
  - {name: a, dir: a}
  - {name: b, dir: b, conflicts: [{path: "etc/**", policy: error}]}
`,
			files:   map[string]any{"a/etc/x": "1", "b/etc/x": "2"},
			wantErr: `etc/x: supplied by overlay "a" and again by overlay "b"`,
			errIs:   ErrConflict,
		},
		{
			name: "rules: fleet, role, overlay; last match wins per field",
			role: `rules:
  - {path: "opt/**", owner: app, group: app}
  - {path: "opt/bin/*", mode: "0750"}
overlays:
  - name: a
    dir: a
    rules: [{path: "opt/bin/tool", mode: "0700", group: root}]
`,
			files: map[string]any{"a/opt/bin/tool": "t", "a/opt/bin/other": "o"},
			want: []string{
				"opt dir 0755 999:999 a",
				"opt/bin dir 0755 999:999 a",
				"opt/bin/other file 0750 999:999 a " + sha8("o"),
				"opt/bin/tool file 0700 999:0 a " + sha8("t"),
			},
		},
		{
			name: "inline entries: files, dirs, symlinks, owners, implicit parents",
			role: `overlays:
  - name: a
    files:
      - {path: etc/motd, content: "hi\n", mode: "0640", owner: app}
      - {path: opt/empty, dir: true}
      - {path: etc/cron.d/x, symlink: /opt/olsystem/etc/cron.d/x}
`,
			want: []string{
				"etc dir 0755 0:0 a",
				"etc/cron.d dir 0755 0:0 a",
				"etc/cron.d/x symlink 0777 0:0 a -> /opt/olsystem/etc/cron.d/x",
				"etc/motd file 0640 999:0 a " + sha8("hi\n"),
				"opt dir 0755 0:0 a",
				"opt/empty dir 0755 0:0 a",
			},
		},
		{
			name: "inline owner and mode are not overridden by rules",
			role: `rules: [{path: "**", owner: app, mode: "0600"}]
overlays:
  - name: a
    files: [{path: x, content: "", mode: "0644", owner: root}]
`,
			want: []string{"x file 0644 0:0 a " + sha8("")},
		},
		{
			name: "deploy: content-addressed bin and a relative active link",
			role: `overlays:
  - name: ol
    deploy: {service: openlibrary, source: src}
  - name: old
    deploy: {service: openlibrary, source: src, revision: r1, active: false}
`,
			files: map[string]any{"src/code.py": "print()"},
			want: []string{
				"opt dir 0755 0:0 ol",
				"opt/openlibrary dir 0755 0:0 ol",
				"opt/openlibrary/deploys dir 0755 0:0 ol",
				"opt/openlibrary/deploys/openlibrary dir 0755 0:0 ol",
				"opt/openlibrary/deploys/openlibrary/BIN dir 0755 0:0 ol",
				"opt/openlibrary/deploys/openlibrary/BIN/code.py file 0644 0:0 ol " + sha8("print()"),
				"opt/openlibrary/deploys/openlibrary/r1 dir 0755 0:0 old",
				"opt/openlibrary/deploys/openlibrary/r1/code.py file 0644 0:0 old " + sha8("print()"),
				"opt/openlibrary/openlibrary symlink 0777 0:0 ol -> deploys/openlibrary/BIN",
			},
		},
		{
			name: "tar: modes, hard links, xattrs, whiteouts",
			role: `overlays:
  - {name: a, dir: a}
  - {name: t, tar: t.tar}
`,
			files: map[string]any{
				"a/opt/gone": "g",
				"t.tar": mkTar(
					tarMember{name: "./opt/", typ: tar.TypeDir, mode: 0o750},
					tarMember{name: "opt/.wh.gone"},
					tarMember{name: "opt/z", body: "data", mode: 0o600, pax: map[string]string{"SCHILY.xattr.user.k": "v"}},
					tarMember{name: "opt/a", typ: tar.TypeLink, link: "opt/z"},
				),
			},
			want: []string{
				"opt dir 0750 0:0 t shadows a",
				"opt/a file 0600 0:0 t " + sha8("data") + " xattrs user.k",
				"opt/z hardlink 0600 0:0 t -> opt/a",
			},
		},
		{
			name: "setuid from a tar is refused",
			role: `overlays: [{name: t, tar: t.tar}]`,
			files: map[string]any{
				"t.tar": mkTar(tarMember{name: "bin/su", body: "x", mode: 0o4755}),
			},
			wantErr: `bin/su: mode 4755 from overlay "t" has a setuid or setgid bit`,
			errIs:   ErrUnsafe,
		},
		{
			name: "setuid from a tar allowed by a rule",
			role: `overlays:
  - {name: t, tar: t.tar, rules: [{path: bin/su, setuid: true}]}
`,
			files: map[string]any{
				"t.tar": mkTar(tarMember{name: "bin/su", body: "x", mode: 0o4755}),
			},
			want: []string{"bin dir 0755 0:0 t", "bin/su file 4755 0:0 t " + sha8("x")},
		},
		{
			// cap_setuid+ep, as setcap writes it: root's powers without a
			// setuid bit.
			name: "file capabilities from a tar are refused",
			role: `overlays: [{name: t, tar: t.tar}]`,
			files: map[string]any{
				"t.tar": mkTar(tarMember{name: "bin/py", body: "x", mode: 0o755, pax: map[string]string{"SCHILY.xattr.security.capability": capSetuid}}),
			},
			wantErr: `bin/py: overlay "t" (t.tar) gives it file capabilities (security.capability), which grant privileges as setuid does; allow them with a rule (capability: true)`,
			errIs:   ErrUnsafe,
		},
		{
			name: "file capabilities allowed by a rule",
			role: `rules: [{path: bin/py, capability: true}]
overlays: [{name: t, tar: t.tar}]
`,
			files: map[string]any{
				"t.tar": mkTar(tarMember{name: "bin/py", body: "x", mode: 0o755, pax: map[string]string{"SCHILY.xattr.security.capability": capSetuid}}),
			},
			want: []string{"bin dir 0755 0:0 t", "bin/py file 0755 0:0 t " + sha8("x") + " xattrs security.capability"},
		},
		{
			// Reading the image back drops both, so the image would fail
			// verify and differ from its own role.
			name: "lost+found and .olimage are refused, once per overlay",
			role: `overlays: [{name: t, tar: t.tar}]`,
			files: map[string]any{
				"t.tar": mkTar(
					tarMember{name: "lost+found/", typ: tar.TypeDir},
					tarMember{name: "lost+found/x", body: "x"},
					tarMember{name: ".olimage/manifest.json", body: "{}"},
				),
			},
			wantErr: `roles/r.yaml:1: role r: .olimage/manifest.json: overlay "t": reserved for olimage's manifest; no overlay may supply it: reserved path
roles/r.yaml:1: role r: lost+found: overlay "t": reserved for e2fsck (every ext4 volume has it); no overlay may supply it: reserved path`,
			errIs: ErrReserved,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]any{"olimage.yaml": testFleetYAML, "roles/r.yaml": tc.role}
			for k, v := range tc.files {
				files[k] = v
			}
			writeFiles(t, dir, files)
			res, err := mergeRole(t, dir)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got no error, want %q", tc.wantErr)
				}
				// Each line of a joined error in turn.
				for _, want := range strings.Split(tc.wantErr, "\n") {
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("got error %q, want it to contain %q", err, want)
					}
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Errorf("error %q does not wrap %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := listing(res.Tree)
			// Deploy bins are content digests; name them for the table.
			for i, l := range got {
				if j := strings.Index(l, "deploys/openlibrary/"); j >= 0 && !strings.Contains(l, "/r1") {
					bin := l[j+len("deploys/openlibrary/"):]
					if k := strings.IndexAny(bin, "/ "); k >= 0 {
						bin = bin[:k]
					}
					if len(bin) == 12 {
						got[i] = strings.ReplaceAll(l, bin, "BIN")
					}
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("tree (-want +got):\n%s", d)
			}
		})
	}
}

// An overlay that removes a directory the overlay below filled, and
// fills it again, puts its entries in the new directory, not in the
// removed one that the last entry placed below went into.
func TestMergeRefillsRemoved(t *testing.T) {
	res, err := mergeFiles(t, map[string]any{
		"olimage.yaml": testFleetYAML,
		"roles/r.yaml": "overlays:\n  - {name: a, dir: a}\n  - {name: b, tar: b.tar, remove: [\"opt/app\"]}\n",
		"a/opt/app/x":  "x",
		"a/opt/app/y":  "y",
		"b.tar":        mkTar(tarMember{name: "opt/app/z", body: "z"}), // no members for its directories
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range res.Tree.Entries {
		got = append(got, e.Path())
	}
	if want := "opt opt/app opt/app/z"; strings.Join(got, " ") != want {
		t.Errorf("merged %q, want %q", strings.Join(got, " "), want)
	}
}
