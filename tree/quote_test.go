package tree

import "testing"

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"opt/openlibrary/README", "opt/openlibrary/README"},
		{"etc/with space/é", "etc/with space/é"},
		{"", ""},
		{"opt/a\nM  opt/b", `"opt/a\nM  opt/b"`},
		{"opt/a\rb", `"opt/a\rb"`},
		{"opt/\x1b[2Jclear", `"opt/\x1b[2Jclear"`},
		{"opt/\u202egnp.exe", `"opt/\u202egnp.exe"`},
		{"opt/a\u2028b", `"opt/a\u2028b"`},
		{"opt/\xff", `"opt/\xff"`},
		{`"opt/a\nb"`, `"\"opt/a\\nb\""`},
		{`opt/"quoted"`, `opt/"quoted"`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"opt/a", "a\nb", `"x"`, "\xff", "\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		for _, c := range []byte(q) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("Quote(%q) = %q holds control byte %#x", s, q, c)
			}
		}
		if q != s && (q[0] != '"') {
			t.Fatalf("Quote(%q) = %q changed it without quoting", s, q)
		}
	})
}
