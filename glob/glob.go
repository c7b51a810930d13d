// Package glob matches slash-separated paths against the globs fleets and
// VM policies are written in: path.Match per segment, plus "**" for any
// number of segments. It knows nothing of where a glob came from; callers
// name the file and line in their errors.
package glob

import (
	"path"
	"strings"
)

// Match reports whether path p matches glob g. Segments match as in
// path.Match; a "**" segment matches any number of segments, none included.
// Both are relative: a caller with absolute paths trims the leading slash
// from both.
func Match(g, p string) bool {
	return matchSegs(strings.Split(g, "/"), strings.Split(p, "/"))
}

func matchSegs(g, p []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			for i := 0; i <= len(p); i++ {
				if matchSegs(g[1:], p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if ok, _ := path.Match(g[0], p[0]); !ok {
			return false
		}
		g, p = g[1:], p[1:]
	}
	return len(p) == 0
}
