package glob

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		glob, path string
		want       bool
	}{
		{"opt/**", "opt", true},
		{"opt/**", "opt/a/b", true},
		{"**/*.pyc", "a.pyc", true},
		{"**/*.pyc", "a/b/c.pyc", true},
		{"opt/*", "opt/a/b", false},
		{"opt/*", "opt/.hidden", true},
		{"etc/cron.d/*", "etc/cron.d", false},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c/y", false},
	}
	for _, tc := range tests {
		if got := Match(tc.glob, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.glob, tc.path, got, tc.want)
		}
	}
}
