// Package testfs writes the small file trees tests build from.
package testfs

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFiles writes each file of files (slash-separated path relative to
// dir, to content) with mode 0644, making parent directories as needed.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Names lists the names in dir, hidden ones included, sorted.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}
