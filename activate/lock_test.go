package activate

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentRuns: activate and deactivate runs started all at once
// on one root wait for each other; none fails, and the root ends as one
// of them leaves it. The lock lives outside the state directory that a
// deactivate removes.
func TestConcurrentRuns(t *testing.T) {
	fsync = false
	t.Cleanup(func() { fsync = true })
	root, base := newRoot(t, v1)
	const runs = 150
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := Options{Root: root, DryRun: i%10 == 9}
			if i%2 == 0 {
				_, errs[i] = Activate(ctx, o)
			} else {
				_, errs[i] = Deactivate(ctx, o)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent runs failed:\n%v", err)
	}
	deactivate(t, root)
	check(t, root, base, "after the runs and a deactivate")
}

// TestJournalTemporary: a run killed while saving the journal leaves
// journal.json.tmp; the next run removes it.
func TestJournalTemporary(t *testing.T) {
	root, base := newRoot(t, v1)
	activate(t, root, Options{})
	tmp := filepath.Join(root, JournalFile+".tmp")
	for _, run := range []func(){
		func() { activate(t, root, Options{}) },
		func() { deactivate(t, root) },
	} {
		writeSpec(t, root, spec{JournalFile + ".tmp": "file:{\"schema\": \"olimage.jou"})
		run()
		if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the next run: %v, want it removed", tmp, err)
		}
	}
	check(t, root, base, "after deactivate")
}

// TestRootMissing: a mistyped --root is an error, and nothing is made
// there.
func TestRootMissing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "typo")
	if _, err := Deactivate(ctx, Options{Root: root}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deactivate --root %s: got %v, want it missing", root, err)
	}
	if _, err := Activate(ctx, Options{Root: root}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("activate --root %s: got %v, want it missing", root, err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want it still missing", root, err)
	}
}

// TestFindingsOrder: verification hashes files on every core, and lists
// what it finds in the manifest's order all the same: a large first file
// is hashed last, and a file whose mode is wrong, found before any file
// is hashed, comes in its place among the others.
func TestFindingsOrder(t *testing.T) {
	v := volume{uuid: v1.uuid, tree: spec{"etc/a/0": "file:" + strings.Repeat("x", 8<<20)}, links: []string{"etc/a/0"}}
	for i := 1; i < 30; i++ {
		v.tree[fmt.Sprintf("etc/a/%02d", i)] = "file:x"
	}
	root, _ := newRoot(t, v)
	var want []string
	for _, p := range slices.Sorted(maps.Keys(v.tree)) {
		os.WriteFile(filepath.Join(root, "1", p), []byte(strings.Repeat("y", len(v.tree[p])-len("file:"))), 0o644)
		want = append(want, filepath.Join(root, "1", p)+": content sha256")
	}
	if err := os.Chmod(filepath.Join(root, "1", "etc/a/05"), 0o600); err != nil {
		t.Fatal(err)
	}
	want[5] = filepath.Join(root, "1", "etc/a/05") + ": mode 0600, manifest 0644"
	want = append(want[:maxFindings], "more differences from the manifest")
	for range 3 {
		_, err := Activate(ctx, Options{Root: root})
		if !errors.Is(err, ErrVerify) {
			t.Fatalf("got %v, want %v", err, ErrVerify)
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(want) {
			t.Fatalf("got %d findings, want %d:\n%s", len(lines), len(want), err)
		}
		for i, l := range lines {
			if !strings.Contains(l, want[i]) {
				t.Fatalf("finding %d is %q, want %q; all:\n%s", i, l, want[i], err)
			}
		}
	}
}

// TestStatusWhileRunning: status does not wait for a run, and says one is
// under way.
func TestStatusWhileRunning(t *testing.T) {
	root, _ := newRoot(t, v1)
	activate(t, root, Options{})
	unlock, err := lock(ctx, root, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(Options{Root: root, Volume: "/1"})
	unlock()
	if err != nil || len(st.Findings) != 1 || !strings.HasPrefix(st.Findings[0], "an olimage run is under way on "+root) {
		t.Fatalf("status during a run: %v, findings %q", err, st.Findings)
	}
	if st, err := ReadStatus(Options{Root: root, Volume: "/1"}); err != nil || !st.OK() {
		t.Fatalf("status after the run: %v, findings %q", err, st.Findings)
	}
}
