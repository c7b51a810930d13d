package verify

import "testing"

// A finding is one line of the report, whatever the path it names.
func TestFindingOneLine(t *testing.T) {
	f := Finding{Where: "opt/a\nopt/b", Msg: "in the image, not in the manifest"}
	if got, want := f.String(), `"opt/a\nopt/b": in the image, not in the manifest`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
