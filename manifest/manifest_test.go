package manifest

import (
	"strings"
	"testing"
)

// TestToEntryRefusesPaths checks that a manifest, which may come from any
// image or file, cannot name a path outside the volume.
func TestToEntryRefusesPaths(t *testing.T) {
	tests := []struct {
		name    string
		entry   Entry
		wantErr string
	}{
		{"dot dot", Entry{Path: "opt/../../x", Type: "file", Mode: "0644"}, `"opt/../../x": not a path inside the volume`},
		{"absolute", Entry{Path: "/etc/passwd", Type: "file", Mode: "0644"}, `"/etc/passwd": not a path inside the volume`},
		{"empty element", Entry{Path: "opt//x", Type: "file", Mode: "0644"}, `"opt//x": not a path inside the volume`},
		{"root", Entry{Path: ".", Type: "dir", Mode: "0755"}, `".": not a path inside the volume`},
		{"empty", Entry{Path: "", Type: "dir", Mode: "0755"}, `"": not a path inside the volume`},
		{"hard link out", Entry{Path: "opt/x", Type: "hardlink", Mode: "0644", Target: "../etc/shadow"}, `opt/x: hard link target: "../etc/shadow": not a path inside the volume`},
		{"good", Entry{Path: "opt/x", Type: "hardlink", Mode: "0644", Target: "opt/y"}, ""},
		{"symlink text is not a path", Entry{Path: "opt/l", Type: "symlink", Mode: "0777", Target: "../../etc"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ToEntry(tc.entry)
			if tc.wantErr == "" {
				if err != nil || e.Path != tc.entry.Path {
					t.Fatalf("got %v, %v; want the entry", e, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
