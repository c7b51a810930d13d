package main

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
)

// linesWatcher records, as each line is written, what check said then.
type linesWatcher struct {
	mu    sync.Mutex
	check func(line string) string
	buf   string
	seen  []string
}

func (w *linesWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf += string(p)
	for {
		line, rest, ok := strings.Cut(w.buf, "\n")
		if !ok {
			return len(p), nil
		}
		w.buf = rest
		w.seen = append(w.seen, w.check(line))
	}
}

// TestBuildLinePerRole checks that build prints each role's summary line
// when that role is built, not once all are: when a's line is written,
// b (built after it with -j 1) has no image yet, and when b's is, it has.
func TestBuildLinePerRole(t *testing.T) {
	dir := testfs.NewDir(t, map[string]string{
		"olimage.yaml":  "fleet: t\n",
		"roles/a.yaml":  "overlays: [{name: s, dir: src}]\n",
		"roles/b.yaml":  "overlays: [{name: s, dir: src}]\n",
		"src/opt/x.txt": "x",
	})
	out := filepath.Join(dir, "out")
	w := &linesWatcher{check: func(line string) string {
		role, _, _ := strings.Cut(line, " ")
		m, _ := filepath.Glob(filepath.Join(out, "b-*.img"))
		return role + " with b's image: " + strings.Join(m, ",")
	}}
	var stderr strings.Builder
	if code := Main([]string{"-f", dir, "build", "a", "b", "-j", "1", "-o", out}, strings.NewReader(""), w, &stderr); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr.String())
	}
	m, _ := filepath.Glob(filepath.Join(out, "b-*.img"))
	if len(m) != 1 {
		t.Fatalf("build wrote %v for b", m)
	}
	want := []string{"a with b's image: ", "b with b's image: " + m[0]}
	if strings.Join(w.seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary lines written when:\n%s\nwant:\n%s", strings.Join(w.seen, "\n"), strings.Join(want, "\n"))
	}
}
