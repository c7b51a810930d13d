package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/roles"
)

// BuildAll gives one outcome per role, in the order asked, each with its
// image or its own error, and refuses requests that concern every role
// before writing anything.
func TestBuildAll(t *testing.T) {
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml":      "fleet: t\n",
		"roles/base.yaml":   "abstract: true\noverlays: [{name: base, dir: base}]\n",
		"roles/a.yaml":      "extends: base\n",
		"roles/b.yaml":      "extends: base\noverlays: [{name: gone, dir: missing}]\n",
		"roles/c.yaml":      "extends: base\noverlays:\n  - name: own\n    files: [{path: opt/c, content: c}]\n",
		"base/etc/app.conf": "conf",
	})
	f, err := roles.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		names  []string
		output string
		jobs   int
		want   string
	}{
		{[]string{"a", "c", "a"}, out, 2, "role a named twice"},
		{[]string{"a", "c"}, out, 0, "0 jobs"},
		{[]string{"a", "c"}, filepath.Join(dir, "x.img"), 1, "takes one role, got 2"},
	} {
		_, err := BuildAll(ctx, f, tc.names, AllOptions{Options: Options{Output: tc.output}, Jobs: tc.jobs})
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v -o %s -j %d: got %v, want a UsageError saying %q", tc.names, tc.output, tc.jobs, err, tc.want)
		}
		if _, err := os.Stat(tc.output); !os.IsNotExist(err) {
			t.Errorf("%s was made (%v)", tc.output, err)
		}
	}

	var done []string
	got, err := BuildAll(ctx, f, []string{"c", "b", "base", "a", "nope"}, AllOptions{
		Options: Options{Output: out}, Jobs: 2,
		Done: func(o Outcome) { done = append(done, o.Role) },
	})
	if err != nil {
		t.Fatal(err)
	}
	wantErr := map[string]string{"b": "missing", "base": "abstract", "nope": "no such role"}
	for i, name := range []string{"c", "b", "base", "a", "nope"} {
		o := got[i]
		switch {
		case o.Role != name:
			t.Errorf("outcome %d is role %s, want %s", i, o.Role, name)
		case wantErr[name] == "" && (o.Err != nil || o.Result == nil):
			t.Errorf("%s: got %v, want an image", name, o.Err)
		case wantErr[name] != "" && (o.Result != nil || o.Err == nil || !strings.Contains(o.Err.Error(), wantErr[name])):
			t.Errorf("%s: got %v, %v, want an error saying %q", name, o.Result, o.Err, wantErr[name])
		}
		if o.Result != nil {
			testenv.Fsck(t, o.Result.Image)
		}
	}
	if len(done) != 5 {
		t.Errorf("Done called for %v, want every role once", done)
	}
}

// With a memory budget smaller than one role's estimate, BuildAll builds
// one role at a time whatever Jobs says, and gives each image the
// estimate it was admitted with.
func TestBuildAllMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"olimage.yaml": "fleet: t\n", "base/etc/app.conf": "conf", "base/opt/x": "x"}
	for _, r := range []string{"a", "b", "c"} {
		files["roles/"+r+".yaml"] = "overlays: [{name: base, dir: base}]\n"
	}
	testfs.WriteFiles(t, dir, files)
	f, err := roles.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var active, most int
	var mu sync.Mutex
	got, err := BuildAll(context.Background(), f, []string{"a", "b", "c"}, AllOptions{
		Options: Options{Output: filepath.Join(dir, "out")}, Jobs: 3, Memory: 1,
		Started: func(string) func(int64, int64) {
			mu.Lock()
			active++
			most = max(most, active)
			mu.Unlock()
			return nil
		},
		Done: func(Outcome) { mu.Lock(); active--; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if most != 1 {
		t.Errorf("%d roles built at once within a budget of 1 byte, want 1", most)
	}
	for _, o := range got {
		if o.Err != nil {
			t.Errorf("%s: %v", o.Role, o.Err)
		} else if o.Result.MemoryEstimate <= buildBase {
			t.Errorf("%s: estimate %d, want more than %d for its entries", o.Role, o.Result.MemoryEstimate, buildBase)
		}
	}
}
