package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/internal/golden"
)

const exampleFleet = "../../examples/openlibrary"

// olimage runs the CLI in-process and returns its output and exit status.
func olimage(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// mustRun runs the CLI in-process, fails t unless it exits 0 and returns
// its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := olimage(t, args...)
	if code != exitOK {
		t.Fatalf("olimage %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestGoldenExample(t *testing.T) {
	cases := []struct {
		file string
		args []string
	}{
		{"roles.txt", []string{"roles"}},
		{"validate.txt", []string{"validate"}},
		{"explain-ol-web-olsystem.txt", []string{"explain", "ol-web", "opt/openlibrary/olsystem"}},
		{"explain-ol-web-nginx.txt", []string{"explain", "ol-web", "/etc/nginx/nginx.conf"}},
		{"explain-ol-covers-geoip.txt", []string{"explain", "ol-covers", "opt/openlibrary/maxmind-geoip"}},
		{"explain-ol-db-cron.txt", []string{"explain", "ol-db", "opt/openlibrary/deploys/olsystem"}},
	}
	names := []string{"ol-web", "ol-covers", "ol-home", "ol-db", "ol-solr", "ol-mem", "ol-www", "ol-backup", "ol-dev"}
	for _, role := range names {
		cases = append(cases,
			struct {
				file string
				args []string
			}{"plan-" + role + ".txt", []string{"plan", role}},
			struct {
				file string
				args []string
			}{"plan-" + role + ".json", []string{"plan", role, "--json"}},
		)
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			out, errOut, code := olimage(t, append([]string{"-f", exampleFleet}, tc.args...)...)
			if code != 0 {
				t.Fatalf("olimage %s: exit %d\n%s", strings.Join(tc.args, " "), code, errOut)
			}
			golden.Check(t, filepath.Join("testdata", "golden", tc.file), []byte(out))
		})
	}
}

// copyTree copies src to dst creating files in reverse order, with the given
// owner and mode mask, so that directory order, inode numbers, owners,
// umask-dependent modes and mtimes all differ from the original.
func copyTree(t *testing.T, src, dst string, reverse bool, uid int, mtime time.Time) {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Directories first, so reversing the order of files is safe.
	sort.SliceStable(paths, func(i, j int) bool { return strings.Count(paths[i], "/") < strings.Count(paths[j], "/") })
	if reverse {
		for i, j := 0, len(paths)-1; i < j; i, j = i+1, j-1 {
			paths[i], paths[j] = paths[j], paths[i]
		}
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(q), 0o777); err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.IsDir():
			err = os.MkdirAll(q, 0o777)
		case fi.Mode()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(p); err == nil {
				err = os.Symlink(target, q)
			}
		default:
			var data []byte
			if data, err = os.ReadFile(p); err == nil {
				err = os.WriteFile(q, data, fi.Mode().Perm()|0o666)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if uid >= 0 && os.Geteuid() == 0 {
			if err := os.Lchown(q, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			os.Chtimes(q, mtime, mtime)
		}
	}
}

// TestPlanDeterministic merges the example fleet from copies made in
// different orders, directories, umasks, time zones, owners and mtimes, and
// requires byte-identical plan --json for every role.
func TestPlanDeterministic(t *testing.T) {
	plans := func(fleet string) map[string]string {
		out := map[string]string{}
		for _, role := range []string{"ol-web", "ol-covers", "ol-db", "ol-dev", "ol-backup"} {
			o, e, code := olimage(t, "-f", fleet, "plan", role, "--json")
			if code != 0 {
				t.Fatalf("plan %s in %s: exit %d: %s", role, fleet, code, e)
			}
			out[role] = o
		}
		return out
	}
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "some", "other", "b")

	old := syscall.Umask(0o022)
	copyTree(t, exampleFleet, a, false, -1, time.Now())
	syscall.Umask(0o077)
	copyTree(t, exampleFleet, b, true, 4321, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	syscall.Umask(old)

	local := time.Local
	t.Cleanup(func() { time.Local = local })
	time.Local = time.UTC
	pa := plans(a)
	time.Local = time.FixedZone("UTC+14", 14*3600)
	pb := plans(b)
	for role, want := range pa {
		if d := cmp.Diff(want, pb[role]); d != "" {
			t.Errorf("%s: plan --json differs between the two copies (-a +b):\n%s", role, d)
		}
	}
}

// TestBuildDeterministic builds images from two differently made copies
// of the example fleet, in different output directories, umasks and time
// zones, and requires identical bytes.
func TestBuildDeterministic(t *testing.T) {
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "deeper", "b")
	old := syscall.Umask(0o022)
	copyTree(t, exampleFleet, a, false, -1, time.Now())
	syscall.Umask(0o077)
	copyTree(t, exampleFleet, b, true, 4321, time.Date(2031, 5, 5, 0, 0, 0, 0, time.UTC))
	t.Cleanup(func() { syscall.Umask(old) })

	local := time.Local
	t.Cleanup(func() { time.Local = local })
	sums := map[string][]string{}
	for i, fleet := range []string{a, b} {
		time.Local = time.FixedZone("zone", (i*13-6)*3600)
		out := filepath.Join(t.TempDir(), "out")
		o, e, code := olimage(t, "-f", fleet, "build", "ol-web", "ol-covers", "-o", out, "--json", "-j", fmt.Sprint(i+1), "--sha256", "--verity")
		if code != 0 {
			t.Fatalf("build in %s: exit %d: %s", fleet, code, e)
		}
		var doc struct {
			Images []struct {
				Role, Image, SHA256 string
				Verity              struct {
					RootHash string `json:"root_hash"`
				}
			}
		}
		if err := json.Unmarshal([]byte(o), &doc); err != nil {
			t.Fatal(err)
		}
		for _, r := range doc.Images {
			if r.SHA256 == "" || r.Verity.RootHash == "" {
				t.Fatalf("%s: no sha256 or root hash in %s", r.Role, o)
			}
			sums[r.Role] = append(sums[r.Role], r.SHA256+" "+r.Verity.RootHash+" "+filepath.Base(r.Image))
		}
	}
	if len(sums) != 2 {
		t.Fatalf("got results for %d roles, want 2", len(sums))
	}
	for role, s := range sums {
		if len(s) != 2 || s[0] != s[1] {
			t.Errorf("%s: builds differ: %v", role, s)
		}
	}
}
