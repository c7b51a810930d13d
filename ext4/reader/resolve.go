package reader

import (
	"fmt"
	"path"
	"strings"

	"github.com/internetarchive/olimage/tree"
)

// maxLinks is how many symlinks one lookup follows, as Linux's MAXSYMLINKS.
const maxLinks = 40

// Resolve follows the symlinks in p inside the image, the way debugfs
// does: a relative target continues from the link's directory, an absolute
// one from the volume root. It returns the volume path p names.
func (fs *FS) Resolve(p string) (string, error) {
	parts := strings.Split(cleanPath(p), "/")
	var done []string
	links := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := path.Join(append(done, name)...)
		st, err := fs.Stat(cur)
		if err != nil {
			return "", err
		}
		if st.Type != tree.Symlink {
			done = append(done, name)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: more than %d symlinks to follow (a loop?)", p, maxLinks)
		}
		if strings.HasPrefix(st.Target, "/") {
			done = nil
		}
		parts = append(strings.Split(st.Target, "/"), parts...)
	}
	return strings.Join(done, "/"), nil
}

// hasGlob reports whether p holds a pattern character of path.Match.
func hasGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// Glob expands pattern (path.Match syntax, one directory level per
// segment) against the image, in name order.
func (fs *FS) Glob(pattern string) ([]string, error) {
	matches := []string{""}
	for _, seg := range strings.Split(cleanPath(pattern), "/") {
		var next []string
		for _, dir := range matches {
			if !hasGlob(seg) {
				p := path.Join(dir, seg)
				if _, err := fs.Stat(p); err == nil {
					next = append(next, p)
				}
				continue
			}
			if st, err := fs.Stat(dir); err != nil || st.Type != tree.Dir {
				continue
			}
			kids, err := fs.ReadDir(dir)
			if err != nil {
				return nil, err
			}
			for _, k := range kids {
				ok, err := path.Match(seg, k.Name())
				if err != nil {
					return nil, fmt.Errorf("%s: %w", pattern, err)
				}
				if ok {
					next = append(next, k.Path())
				}
			}
		}
		matches = next
	}
	return matches, nil
}

// cleanPath is p relative to the volume root, cleaned: "/etc/../opt/" is
// "opt".
func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}
