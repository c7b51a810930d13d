package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildUsage checks that every malformed build command line exits 2
// with a message that says what to do, and writes nothing.
func TestBuildUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"build", "-o", out}, "build: name the roles to build, or give --all"},
		{[]string{"build", "--all", "ol-db", "-o", out}, "build: name roles or give --all, not both"},
		{[]string{"build", "ol-db", "ol-mem", "ol-db", "-o", out}, "build: role ol-db named twice"},
		{[]string{"build", "ol-db", "-j", "0", "-o", out}, "build: -j 0: want 1 or more"},
		{[]string{"build", "ol-db", "ol-mem", "-o", out + ".img"}, "build: -o " + out + ".img takes one role, got 2"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := olimage(t, append([]string{"-f", exampleFleet}, tc.args...)...)
			if code != exitError || !strings.Contains(stderr, "olimage: error: "+tc.want) {
				t.Errorf("got exit %d, stderr %q; want exit %d and %q", code, stderr, exitError, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout: got %q, want nothing", stdout)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was made (%v)", out, err)
			}
		})
	}
}
