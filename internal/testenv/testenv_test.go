package testenv

import "testing"

// What e2fsck -fn prints: for a clean file system only the version, the
// passes and the summary match; any other line is a finding.
func TestFsckClean(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"e2fsck 1.47.0 (5-Feb-2023)", true},
		{"Pass 1: Checking inodes, blocks, and sizes", true},
		{"Pass 5: Checking group summary information", true},
		{"ol-web: 11/2048 files (0.0% non-contiguous), 1299/8192 blocks", true},
		{"/tmp/x.img: 11/2048 files (0.0% non-contiguous), 1299/8192 blocks", true},
		{"Free blocks count wrong (6893, counted=6892).", false},
		{"Padding at end of inode bitmap is not set.", false},
		{"Pass 6: imaginary", false},
	} {
		if got := fsckClean.MatchString(tc.line); got != tc.want {
			t.Errorf("%q: got %v, want %v", tc.line, got, tc.want)
		}
	}
}
