package tree

import "testing"

// lessPlain is Less without unsafe: the common prefix is skipped by
// comparing eight-byte substrings. BenchmarkLessPlain measures what
// Less's unsafe loads buy over it.
func lessPlain(a, b string) bool {
	n := min(len(a), len(b))
	i := 0
	for i+8 <= n && a[i:i+8] == b[i:i+8] {
		i += 8
	}
	for ; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return true
		}
		if cb == '/' {
			return false
		}
		return ca < cb
	}
	return len(a) < len(b)
}

func TestLessPlain(t *testing.T) {
	paths := []string{"", "a", "a/b", "a-b", "opt/openlibrary/x", "opt/openlibrary-x", "opt/openlibrary/deploys/a", "opt/openlibrary/deploys/b/c"}
	for _, a := range paths {
		for _, b := range paths {
			if got, want := lessPlain(a, b), Less(a, b); got != want {
				t.Errorf("lessPlain(%q, %q) = %v, Less says %v", a, b, got, want)
			}
		}
	}
}

func BenchmarkLessPlain(b *testing.B) {
	x, y := "opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/a.conf", "opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/b.conf"
	for range b.N {
		lessPlain(x, y)
	}
}
