package overlays

import (
	"errors"
	"go/build"
	"slices"
	"strings"
	"testing"
)

// TestImportsNoManifest: overlays makes trees; the format that records
// them (manifest) is above it, and reaches it only through History.
func TestImportsNoManifest(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := "github.com/internetarchive/olimage/manifest"; slices.Contains(p.Imports, m) {
		t.Errorf("overlays imports %s", m)
	}
}

// TestHistoryNeedsReader: a deploy history merged without a History is
// refused at its declaration, before any image is opened.
func TestHistoryNeedsReader(t *testing.T) {
	_, err := mergeFiles(t, map[string]any{
		"olimage.yaml": testFleetYAML,
		"src/new/f":    "n\n",
		"roles/r.yaml": "overlays:\n  - name: sys\n    deploy:\n      service: olsystem\n      source: src/new\n      revision: new\n      history: {from: old.img, keep: 1}\n",
	})
	if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "roles/r.yaml:") || !strings.Contains(err.Error(), "Options.History") {
		t.Errorf("got %v, want a refused history at roles/r.yaml naming Options.History", err)
	}
}
