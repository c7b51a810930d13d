package sbom

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name, in, wantName, wantVersion string
		bad                             bool
	}{
		{name: "headers", in: "Metadata-Version: 2.1\nName: gunicorn\nVersion: 21.2.0\nSummary: x\n\nlong description\nName: other\n", wantName: "gunicorn", wantVersion: "21.2.0"},
		{name: "CRLF", in: "Name: web.py\r\nVersion: 0.62\r\n\r\n", wantName: "web.py", wantVersion: "0.62"},
		{name: "no final blank line", in: "Name: a\nVersion: 1", wantName: "a", wantVersion: "1"},
		{name: "no version", in: "Name: a\n\n", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "not headers", in: "hello world\n", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, v, err := ParseMetadata(strings.NewReader(tc.in))
			if tc.bad {
				if !errors.Is(err, ErrMetadata) {
					t.Fatalf("got %q %q %v, want ErrMetadata", n, v, err)
				}
				return
			}
			if err != nil || n != tc.wantName || v != tc.wantVersion {
				t.Fatalf("got %q %q %v, want %q %q", n, v, err, tc.wantName, tc.wantVersion)
			}
		})
	}
}

func TestPypiName(t *testing.T) {
	for in, want := range map[string]string{"web.py": "web-py", "python_memcached": "python-memcached", "Foo__Bar.-baz": "foo-bar-baz"} {
		if got := pypiName(in); got != want {
			t.Errorf("pypiName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{"Name: a\nVersion: 1\n\n", "Name: a\n Version: 1\n", "\x00:\n", ": \n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, v, err := ParseMetadata(strings.NewReader(string(b)))
		if err == nil && (n == "" || v == "") {
			t.Fatalf("no error, but name %q version %q", n, v)
		}
	})
}
