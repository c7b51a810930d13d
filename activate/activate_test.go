package activate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/manifest"
)

// A tree spec maps a path relative to a root to "dir", "file:CONTENT" or
// "link:TEXT"; "file:*" matches any content.
type spec map[string]string

// distro is the root file system before olimage: the distribution's own
// /etc and /opt.
var distro = spec{
	"etc/hostname":                    "file:vm\n",
	"etc/nginx/nginx.conf":            "file:distro nginx\n",
	"etc/nginx/mime.types":            "file:distro mime\n",
	"etc/cron.d/other":                "file:other cron\n",
	"etc/systemd/system/ol.service":   "file:distro unit\n",
	"opt/petabox/old":                 "file:old petabox\n",
	"var/lib/dpkg/status":             "file:dpkg\n",
	"home/ol/.profile":                "file:profile\n",
	"etc/systemd/system/getty.target": "dir",
}

// volume is an image's volume tree and the links of its plan.
type volume struct {
	uuid  string
	tree  spec
	links []string
	plan  []manifest.Link // links with a target of their own, after links
	role  string          // ol-web if empty
}

var v1 = volume{
	uuid: "11111111-1111-5111-8111-111111111111",
	tree: spec{
		"etc/nginx/nginx.conf":     "link:/opt/openlibrary/olsystem/etc/nginx/nginx.conf",
		"etc/cron.d/openlibrary":   "file:ol cron v1\n",
		"etc/new/sub/x.conf":       "file:x v1\n",
		"opt/openlibrary/olsystem": "link:deploys/olsystem/aaa",
		"opt/openlibrary/deploys/olsystem/aaa/etc/nginx/nginx.conf": "file:ol nginx v1\n",
		"opt/petabox/README": "file:petabox v1\n",
	},
	links: []string{"etc/cron.d/openlibrary", "etc/new/sub/x.conf", "etc/nginx/nginx.conf", "opt/openlibrary", "opt/petabox"},
}

// v2 drops etc/new/sub/x.conf and opt/petabox, and adds
// etc/systemd/system/ol.service.
var v2 = volume{
	uuid: "22222222-2222-5222-8222-222222222222",
	tree: spec{
		"etc/nginx/nginx.conf":                                      "link:/opt/openlibrary/olsystem/etc/nginx/nginx.conf",
		"etc/cron.d/openlibrary":                                    "file:ol cron v2\n",
		"etc/systemd/system/ol.service":                             "file:ol unit v2\n",
		"opt/openlibrary/olsystem":                                  "link:deploys/olsystem/bbb",
		"opt/openlibrary/deploys/olsystem/bbb/etc/nginx/nginx.conf": "file:ol nginx v2\n",
	},
	links: []string{"etc/cron.d/openlibrary", "etc/nginx/nginx.conf", "etc/systemd/system/ol.service", "opt/openlibrary"},
}

// writeSpec creates the tree s under dir.
func writeSpec(t *testing.T, dir string, s spec) {
	t.Helper()
	for p, v := range s {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case v == "dir":
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(v, "file:"):
			err = os.WriteFile(full, []byte(v[len("file:"):]), 0o644)
		case strings.HasPrefix(v, "link:"):
			err = os.Symlink(v[len("link:"):], full)
		default:
			t.Fatalf("bad spec %s: %q", p, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// writeVolume writes the volume v, with its manifest, at dir, replacing
// whatever was there.
func writeVolume(t *testing.T, dir string, v volume) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	writeSpec(t, dir, v.tree)
	m := manifest.Manifest{
		Schema: manifest.ImageSchema, Fleet: "test", Role: "ol-web", Label: "ol-web",
		UUID: v.uuid, TreeDigest: strings.Repeat(v.uuid[:1], 64), Activation: &manifest.Activation{Mount: "/1", Links: []manifest.Link{}},
	}
	got := snapshot(t, dir)
	for _, p := range slices.Sorted(maps.Keys(got)) {
		s := got[p]
		e := manifest.Entry{Path: p, Type: strings.SplitN(s, ":", 2)[0]}
		if e.Type == "link" {
			e.Type, e.Target = "symlink", s[len("link:"):]
		}
		describeEntry(t, filepath.Join(dir, p), &e)
		m.Entries = append(m.Entries, e)
	}
	for _, l := range v.links {
		m.Activation.Links = append(m.Activation.Links, manifest.Link{Path: l, Target: l})
	}
	m.Activation.Links = append(m.Activation.Links, v.plan...)
	if v.role != "" {
		m.Role, m.Label = v.role, v.role
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	writeSpec(t, dir, spec{manifest.Path: "file:" + string(b)})
}

// describeEntry fills e's metadata and digest from the file at p, as a
// build would have recorded them.
func describeEntry(t *testing.T, p string, e *manifest.Entry) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	e.Mode = fmt.Sprintf("%04o", st.Mode&0o7777)
	e.UID, e.GID = st.Uid, st.Gid
	if e.Type == "file" {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		e.Size, e.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
	}
}

// snapshot reads the whole tree under dir, not following symlinks.
func snapshot(t *testing.T, dir string) spec {
	t.Helper()
	s := spec{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == filepath.Dir(LockFile) {
			return filepath.SkipDir // the lock stays, where a boot clears it
		}
		switch {
		case d.IsDir():
			s[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			text, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s[rel] = "link:" + text
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s[rel] = "file:" + string(b)
			if rel == JournalFile {
				s[rel] = "file:*"
			}
		default:
			s[rel] = "other"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// full adds the parent directories of every path of s.
func full(s spec) spec {
	out := spec{}
	for p, v := range s {
		out[p] = v
		for q := parentOf(p); q != ""; q = parentOf(q) {
			out[q] = "dir"
		}
	}
	return out
}

// edit returns a copy of s with edits applied: "PATH=VALUE" sets a path
// (and its parents as directories), "-PATH" removes it and its subtree,
// "PATH>DEST" moves it and its subtree.
func edit(s spec, edits ...string) spec {
	out := spec{}
	for p, v := range s {
		out[p] = v
	}
	for _, e := range edits {
		switch {
		case strings.HasPrefix(e, "-"):
			p := e[1:]
			for q := range out {
				if under(q, p) {
					delete(out, q)
				}
			}
		case strings.Contains(e, ">"):
			from, to, _ := strings.Cut(e, ">")
			moved := spec{}
			for q, v := range out {
				if under(q, from) {
					moved[to+q[len(from):]] = v
					delete(out, q)
				}
			}
			for q, v := range full(moved) {
				out[q] = v
			}
		default:
			p, v, _ := strings.Cut(e, "=")
			for q, v := range full(spec{p: v}) {
				out[q] = v
			}
		}
	}
	return out
}

// newRoot makes a root holding the distro tree and volume v at /1, and
// returns it with its snapshot.
func newRoot(t *testing.T, v volume) (string, spec) {
	t.Helper()
	root := t.TempDir()
	writeSpec(t, root, distro)
	writeVolume(t, filepath.Join(root, "1"), v)
	return root, snapshot(t, root)
}

func check(t *testing.T, root string, want spec, when string) {
	t.Helper()
	if diff := cmp.Diff(want, snapshot(t, root)); diff != "" {
		t.Fatalf("%s: root tree (-want +got):\n%s", when, diff)
	}
}

func bk(id, p string) string { return path.Join(BackupDir, id, p) }

// active1 is base (distro plus volume v1) after activating v1.
func active1(base spec) spec {
	return edit(base,
		"etc/nginx/nginx.conf>"+bk(v1.uuid, "etc/nginx/nginx.conf"),
		"opt/petabox>"+bk(v1.uuid, "opt/petabox"),
		"etc/cron.d/openlibrary=link:/1/etc/cron.d/openlibrary",
		"etc/new/sub/x.conf=link:/1/etc/new/sub/x.conf",
		"etc/nginx/nginx.conf=link:/1/etc/nginx/nginx.conf",
		"opt/openlibrary/deploys=link:/1/opt/openlibrary/deploys",
		"opt/openlibrary/olsystem=link:/1/opt/openlibrary/deploys/olsystem/aaa",
		"opt/petabox=link:/1/opt/petabox",
		JournalFile+"=file:*",
	)
}

// active2 is base (distro plus volume v2) after activating v1, then v2.
func active2(base spec) spec { return active2At(base, "/1", v1.uuid) }

// active2At is base after activating v2 mounted at mount, from an image
// nginx (whose activation moved the distro's nginx.conf aside) active.
func active2At(base spec, mount, nginx string) spec {
	return edit(base,
		"etc/nginx/nginx.conf>"+bk(nginx, "etc/nginx/nginx.conf"),
		"etc/systemd/system/ol.service>"+bk(v2.uuid, "etc/systemd/system/ol.service"),
		"etc/cron.d/openlibrary=link:"+mount+"/etc/cron.d/openlibrary",
		"etc/nginx/nginx.conf=link:"+mount+"/etc/nginx/nginx.conf",
		"etc/systemd/system/ol.service=file:"+writtenHeader(mount+"/etc/systemd/system/ol.service")+"ol unit v2\n",
		"etc/systemd/system/ol.service.d/olimage.conf=file:"+dropIn(mount),
		"opt/openlibrary/deploys=link:"+mount+"/opt/openlibrary/deploys",
		"opt/openlibrary/olsystem=link:"+mount+"/opt/openlibrary/deploys/olsystem/bbb",
		JournalFile+"=file:*",
	)
}

var ctx = context.Background()

func activate(t *testing.T, root string, o Options) *Report {
	t.Helper()
	o.Root = root
	rep, err := Activate(ctx, o)
	if err != nil {
		t.Fatalf("activate: %v", err)
	}
	return rep
}

func deactivate(t *testing.T, root string) *Report {
	t.Helper()
	rep, err := Deactivate(ctx, Options{Root: root})
	if err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	return rep
}

func ops(r *Report) []string {
	var out []string
	for _, c := range r.Changes {
		s := string(c.Op) + " " + c.Path
		if c.Target != "" {
			s += " -> " + c.Target
		}
		if c.Backup != "" {
			s += " => " + c.Backup
		}
		out = append(out, s)
	}
	return out
}

// dryRun checks that a dry run changes nothing and plans what the real
// run then does.
func dryRun(t *testing.T, root string, o Options, deact bool) []string {
	t.Helper()
	before := snapshot(t, root)
	o.Root, o.DryRun = root, true
	var rep *Report
	var err error
	if deact {
		rep, err = Deactivate(ctx, o)
	} else {
		rep, err = Activate(ctx, o)
	}
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	check(t, root, before, "after a dry run")
	return ops(rep)
}

func TestLifecycle(t *testing.T) {
	root, base1 := newRoot(t, v1)

	plan := dryRun(t, root, Options{}, false)
	rep := activate(t, root, Options{})
	if diff := cmp.Diff(plan, ops(rep)); diff != "" {
		t.Errorf("dry run planned (-) other steps than activate took (+):\n%s", diff)
	}
	want := []string{
		"link etc/cron.d/openlibrary -> /1/etc/cron.d/openlibrary",
		"mkdir etc/new", "mkdir etc/new/sub",
		"link etc/new/sub/x.conf -> /1/etc/new/sub/x.conf",
		"move etc/nginx/nginx.conf => " + bk(v1.uuid, "etc/nginx/nginx.conf"),
		"link etc/nginx/nginx.conf -> /1/etc/nginx/nginx.conf",
		"mkdir opt/openlibrary",
		"link opt/openlibrary/deploys -> /1/opt/openlibrary/deploys",
		"link opt/openlibrary/olsystem -> /1/opt/openlibrary/deploys/olsystem/aaa",
		"move opt/petabox => " + bk(v1.uuid, "opt/petabox"),
		"link opt/petabox -> /1/opt/petabox",
	}
	if diff := cmp.Diff(want, ops(rep)); diff != "" {
		t.Errorf("activate steps (-want +got):\n%s", diff)
	}
	check(t, root, active1(base1), "after activate")

	// Again: nothing to do.
	for _, c := range dryRun(t, root, Options{}, false) {
		if !strings.HasPrefix(c, "keep ") {
			t.Errorf("re-activate plans %q, want only keeps", c)
		}
	}
	rep = activate(t, root, Options{})
	if rep.Changed() {
		t.Errorf("re-activate changed %q, want only keeps", ops(rep))
	}
	check(t, root, active1(base1), "after re-activate")

	// Switch to the next release on the same mount point.
	writeVolume(t, filepath.Join(root, "1"), v2)
	_, base2 := newRoot(t, v2)
	plan = dryRun(t, root, Options{}, false)
	rep = activate(t, root, Options{})
	if diff := cmp.Diff(plan, ops(rep)); diff != "" {
		t.Errorf("dry run planned (-) other steps than the switch took (+):\n%s", diff)
	}
	check(t, root, active2(base2), "after switching to v2")
	if rep.Previous == nil || rep.Previous.UUID != v1.uuid || rep.Image.UUID != v2.uuid {
		t.Errorf("switch: previous %+v, image %+v", rep.Previous, rep.Image)
	}

	plan = dryRun(t, root, Options{}, true)
	rep = deactivate(t, root)
	if diff := cmp.Diff(plan, ops(rep)); diff != "" {
		t.Errorf("dry run planned (-) other steps than deactivate took (+):\n%s", diff)
	}
	check(t, root, base2, "after deactivate")

	// Nothing left to do.
	if rep := deactivate(t, root); len(rep.Changes) != 0 {
		t.Errorf("second deactivate: %q", ops(rep))
	}
	check(t, root, base2, "after a second deactivate")
}

// TestSwitchMount activates a second volume mounted elsewhere: every
// link changes its text, originals stay where they are.
func TestSwitchMount(t *testing.T) {
	root, _ := newRoot(t, v1)
	writeVolume(t, filepath.Join(root, "2"), v2)
	base := snapshot(t, root)
	activate(t, root, Options{})
	activate(t, root, Options{Volume: "/2"})
	want := active2At(base, "/2", v2.uuid)
	check(t, root, want, "after activating /2")
	st, err := ReadStatus(Options{Root: root, Volume: "/2"})
	if err != nil || !st.OK() {
		t.Errorf("status: %v, findings %q", err, st.Findings)
	}
	deactivate(t, root)
	check(t, root, base, "after deactivate")
}

var errCrash = errors.New("crash")

// crashAt returns a hook that fails at its n-th call.
func crashAt(n int) func() error {
	calls := 0
	return func() error {
		calls++
		if calls == n {
			return errCrash
		}
		return nil
	}
}

// TestInterrupted stops activate, a switch and deactivate at every point
// where a crash could happen, then checks that the next activate or
// deactivate completes the job exactly.
func TestInterrupted(t *testing.T) {
	type scenario struct {
		name  string
		setup func(t *testing.T, root string)      // before the interrupted run
		run   func(root string, o Options) error   // the interrupted run
		then  func(t *testing.T, root string) spec // completes it, returns the expected tree's base
		want  func(base spec) spec
	}
	act := func(root string, o Options) error { o.Root = root; _, err := Activate(ctx, o); return err }
	deact := func(root string, o Options) error { o.Root = root; _, err := Deactivate(ctx, o); return err }
	toV2 := func(t *testing.T, root string) {
		activate(t, root, Options{})
		writeVolume(t, filepath.Join(root, "1"), v2)
	}
	same := func(s spec) spec { return s }
	scenarios := []scenario{
		{"activate/then-activate", func(*testing.T, string) {}, act, func(t *testing.T, root string) spec { activate(t, root, Options{}); return nil }, active1},
		{"activate/then-deactivate", func(*testing.T, string) {}, act, func(t *testing.T, root string) spec { deactivate(t, root); return nil }, same},
		{"switch/then-activate", toV2, act, func(t *testing.T, root string) spec { activate(t, root, Options{}); return nil }, active2},
		{"switch/then-deactivate", toV2, act, func(t *testing.T, root string) spec { deactivate(t, root); return nil }, same},
		{"deactivate/then-deactivate", func(t *testing.T, root string) { activate(t, root, Options{}) }, deact, func(t *testing.T, root string) spec { deactivate(t, root); return nil }, same},
		{"deactivate/then-activate", func(t *testing.T, root string) { activate(t, root, Options{}) }, deact, func(t *testing.T, root string) spec { activate(t, root, Options{}); return nil }, active1},
	}
	fsync = false
	t.Cleanup(func() { fsync = true })
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			// The base: distro plus whichever volume is mounted at the end.
			baseRoot, _ := newRoot(t, v1)
			if strings.HasPrefix(sc.name, "switch") {
				writeVolume(t, filepath.Join(baseRoot, "1"), v2)
			}
			base := snapshot(t, baseRoot)
			for n := 1; ; n++ {
				root := t.TempDir()
				writeSpec(t, root, distro)
				writeVolume(t, filepath.Join(root, "1"), v1)
				sc.setup(t, root)
				err := sc.run(root, Options{hook: crashAt(n)})
				if err == nil {
					if n < 3 {
						t.Fatalf("the run finished before the first crash point")
					}
					return
				}
				if !errors.Is(err, errCrash) {
					t.Fatalf("crash at %d: %v", n, err)
				}
				st, err := ReadStatus(Options{Root: root})
				if err != nil {
					t.Fatalf("crash at %d: status: %v", n, err)
				}
				if st.OK() && strings.HasPrefix(sc.name, "activate") {
					t.Errorf("crash at %d: status is OK", n)
				}
				// A dry run of what completes it changes nothing.
				dryRun(t, root, Options{}, strings.HasSuffix(sc.name, "then-deactivate"))
				sc.then(t, root)
				check(t, root, sc.want(base), fmt.Sprintf("crash at point %d", n))
				if n > 200 {
					t.Fatal("no end to crash points")
				}
			}
		})
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		opts  Options
		want  error
		msg   string
	}{
		{"symlinked parent", func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, "etc/nginx"))
			os.MkdirAll(filepath.Join(root, "elsewhere"), 0o755)
			os.Symlink("../elsewhere", filepath.Join(root, "etc/nginx"))
		}, Options{}, ErrUnsafe, "/etc/nginx is a symlink to ../elsewhere (olimage did not make it)"},
		{"file parent", func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, "etc/new"))
			os.WriteFile(filepath.Join(root, "etc/new"), []byte("x"), 0o644)
		}, Options{}, ErrUnsafe, "/etc/new is a regular file, not a directory"},
		{"missing target", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "1/etc/new/sub/x.conf"))
		}, Options{}, ErrVerify, "x.conf: link target: "},
		{"wrong type", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "1/etc/new/sub/x.conf"))
			os.Mkdir(filepath.Join(root, "1/etc/new/sub/x.conf"), 0o755)
		}, Options{}, ErrVerify, "the manifest says file, the volume holds a directory"},
		{"changed content", func(t *testing.T, root string) {
			os.WriteFile(filepath.Join(root, "1/opt/openlibrary/deploys/olsystem/aaa/etc/nginx/nginx.conf"), []byte("ol nginx vX\n"), 0o644)
		}, Options{}, ErrVerify, "nginx.conf: content sha256 "},
		{"changed mode", func(t *testing.T, root string) {
			os.Chmod(filepath.Join(root, "1/opt/petabox/README"), 0o666)
		}, Options{}, ErrVerify, "README: mode 0666, manifest 0"},
		{"missing file", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "1/opt/petabox/README"))
		}, Options{}, ErrVerify, "README: lstat "},
		{"wrong schema", func(t *testing.T, root string) {
			p := filepath.Join(root, "1", manifest.Path)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), manifest.ImageSchema, "olimage.manifest/v9", 1)), 0o644)
		}, Options{}, ErrVerify, `schema "olimage.manifest/v9"`},
		{"link into the state directory", func(t *testing.T, root string) {
			p := filepath.Join(root, "1", manifest.Path)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"path":"opt/petabox"`, `"path":"var/lib/olimage/x"`, 1)), 0o644)
		}, Options{Force: true}, ErrUnsafe, "olimage keeps its state in /var/lib/olimage"},
		{"link outside the root", func(t *testing.T, root string) {
			p := filepath.Join(root, "1", manifest.Path)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"path":"opt/petabox"`, `"path":"../x"`, 1)), 0o644)
		}, Options{Force: true}, ErrUnsafe, `path "../x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := newRoot(t, v1)
			tc.setup(t, root)
			before := snapshot(t, root)
			tc.opts.Root = root
			_, err := Activate(ctx, tc.opts)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got error %v, want %v containing %q", err, tc.want, tc.msg)
			}
			check(t, root, before, "after a refused activate")
		})
	}
}

// TestForce activates a volume that fails verification when forced.
func TestForce(t *testing.T) {
	root, _ := newRoot(t, v1)
	os.Remove(filepath.Join(root, "1/etc/new/sub/x.conf"))
	if _, err := Activate(ctx, Options{Root: root}); !errors.Is(err, ErrVerify) {
		t.Fatalf("got %v, want %v", err, ErrVerify)
	}
	activate(t, root, Options{Force: true})
	if st, _ := ReadStatus(Options{Root: root}); !st.OK() {
		t.Errorf("status after a forced activate: %q", st.Findings)
	}
}

// TestConflict: a link olimage made and someone replaced is neither
// removed nor overwritten.
func TestConflict(t *testing.T) {
	root, _ := newRoot(t, v1)
	activate(t, root, Options{})
	p := filepath.Join(root, "etc/cron.d/openlibrary")
	os.Remove(p)
	os.WriteFile(p, []byte("mine"), 0o644)
	before := snapshot(t, root)
	for _, f := range []func() error{
		func() error { _, err := Activate(ctx, Options{Root: root}); return err },
		func() error { _, err := Deactivate(ctx, Options{Root: root}); return err },
	} {
		if err := f(); !errors.Is(err, ErrConflict) {
			t.Errorf("got %v, want %v", err, ErrConflict)
		}
	}
	if b, _ := os.ReadFile(p); string(b) != "mine" {
		t.Errorf("the replaced link now holds %q", b)
	}
	_ = before
}

func TestStatus(t *testing.T) {
	root, _ := newRoot(t, v1)
	st, err := ReadStatus(Options{Root: root})
	if err != nil || st.OK() || st.Findings[0] != "no image is active" {
		t.Fatalf("before activate: %v %q", err, st.Findings)
	}
	activate(t, root, Options{})
	st, err = ReadStatus(Options{Root: root, Volume: "/1"})
	if err != nil || !st.OK() || st.Image.UUID != v1.uuid || len(st.Links) != 6 {
		t.Fatalf("after activate: %v %+v", err, st)
	}
	os.Remove(filepath.Join(root, "opt/petabox"))
	os.Remove(filepath.Join(root, "etc/cron.d/openlibrary"))
	os.WriteFile(filepath.Join(root, "etc/cron.d/openlibrary"), nil, 0o644)
	st, _ = ReadStatus(Options{Root: root})
	want := []string{
		"/etc/cron.d/openlibrary: a regular file, want a symlink to /1/etc/cron.d/openlibrary",
		"/opt/petabox: missing, want a symlink to /1/opt/petabox",
	}
	if diff := cmp.Diff(want, st.Findings); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	// A missing link is made again by the next activate.
	os.Remove(filepath.Join(root, "etc/cron.d/openlibrary"))
	activate(t, root, Options{})
	if st, _ := ReadStatus(Options{Root: root}); !st.OK() {
		t.Errorf("after re-activate: %q", st.Findings)
	}
	// Another volume's image is not the active one.
	writeVolume(t, filepath.Join(root, "1"), v2)
	st, _ = ReadStatus(Options{Root: root, Volume: "/1"})
	if st.OK() || !strings.Contains(st.Findings[0], "the active image is ol-web "+v1.uuid) {
		t.Errorf("with v2 mounted: %q", st.Findings)
	}
}

// TestParentSwappedAfterPlanning: a directory above a path that is
// replaced by a symlink between planning and acting is refused when the
// action comes, not followed: what the symlink points to is untouched.
// Deactivating through a swapped parent is refused the same way.
func TestParentSwappedAfterPlanning(t *testing.T) {
	swap := func(t *testing.T, root string) {
		t.Helper()
		nginx := filepath.Join(root, "etc/nginx")
		if err := os.Rename(nginx, filepath.Join(root, "elsewhere")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../elsewhere", nginx); err != nil {
			t.Fatal(err)
		}
	}
	const msg = "/etc/nginx/nginx.conf: refused: /etc/nginx is a symlink to ../elsewhere; olimage never links through a symlink"

	t.Run("activate", func(t *testing.T) {
		root, _ := newRoot(t, v1)
		var before spec
		_, err := Activate(ctx, Options{Root: root, hook: func() error {
			if before == nil {
				swap(t, root)
				before = snapshot(t, filepath.Join(root, "elsewhere"))
			}
			return nil
		}})
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("got %v, want %q", err, msg)
		}
		check(t, filepath.Join(root, "elsewhere"), before, "the symlink's target directory, after activate")
	})

	t.Run("deactivate", func(t *testing.T) {
		root, _ := newRoot(t, v1)
		activate(t, root, Options{})
		swapped := false
		_, err := Deactivate(ctx, Options{Root: root, hook: func() error {
			if !swapped {
				// After activation etc/nginx holds olimage's link; move
				// the directory, link and all, and point a symlink at it.
				swap(t, root)
				swapped = true
			}
			return nil
		}})
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("got %v, want %q", err, msg)
		}
		fi, err := os.Lstat(filepath.Join(root, "elsewhere/nginx.conf"))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("olimage's link in the symlink's target directory: %v, %v; want it left in place", fi, err)
		}
	})
}

// TestStateDirBehindSymlink: a /var that is a symlink (to another disk,
// say) holds the journal and the backups; only the paths activation
// links, and the backups below BackupDir, are walked without following
// symlinks.
func TestStateDirBehindSymlink(t *testing.T) {
	root, _ := newRoot(t, v1)
	if err := os.MkdirAll(filepath.Join(root, "disk"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "var"), filepath.Join(root, "disk/var")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("disk/var", filepath.Join(root, "var")); err != nil {
		t.Fatal(err)
	}
	base := snapshot(t, root)
	activate(t, root, Options{})
	if _, err := os.Lstat(filepath.Join(root, "disk", bk(v1.uuid, "etc/nginx/nginx.conf"))); err != nil {
		t.Errorf("the backup is not in the directory /var points to: %v", err)
	}
	deactivate(t, root)
	check(t, root, base, "after deactivate")
}

// A move whose path and backup are both gone, with the path's directory
// gone too, is done: the next run completes an interrupted one whatever
// was removed in between.
func TestMoveResumesWithoutParent(t *testing.T) {
	root := t.TempDir()
	b := bk("id", "gone/x")
	if err := doMove(root, "gone/x", b); err != nil {
		t.Errorf("nothing at the path or its backup: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(b)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, b), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := doMove(root, "gone/x", b); err != nil {
		t.Errorf("moved before an interruption: %v", err)
	}
}
