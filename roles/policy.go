package roles

import (
	"errors"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/internetarchive/olimage/glob"
)

// ContentPolicy is what a fleet and its roles refuse to put in an image
// (policy: in olimage.yaml and in a role). The secret detector, world
// writable entries and secret-like file names are always checked; the
// fields add to that.
type ContentPolicy struct {
	// Forbid are globs of volume paths that no image may hold.
	Forbid []Glob
	// Allow are globs of volume paths exempt from every check, each with
	// the reason someone gave for it.
	Allow []Allow
	// MaxFileSize is the largest regular file allowed; 0 means no limit.
	MaxFileSize int64
}

// Allow exempts the paths matching a glob from the content policy.
type Allow struct {
	Glob
	Reason string
}

type rawPolicy struct {
	Forbid      []string `yaml:"forbid"`
	MaxFileSize string   `yaml:"max_file_size"`
	Allow       []struct {
		Path   string `yaml:"path"`
		Reason string `yaml:"reason"`
	} `yaml:"allow"`
}

// policy reads raw, found under key policy of parent in file, on top of
// inherited: globs add to those inherited, max_file_size replaces.
func policy(raw rawPolicy, file string, parent *yaml.Node, inherited ContentPolicy) (ContentPolicy, error) {
	p := ContentPolicy{
		Forbid:      append([]Glob(nil), inherited.Forbid...),
		Allow:       append([]Allow(nil), inherited.Allow...),
		MaxFileSize: inherited.MaxFileSize,
	}
	n := field(parent, "policy")
	var errs []error
	fl := itemLines(n, "forbid")
	for i, g := range raw.Forbid {
		pos := Pos{file, lineAt(fl, i)}
		if err := checkGlob(g); err != nil {
			errs = append(errs, errorf(pos, "policy: forbid: %v", err))
			continue
		}
		p.Forbid = append(p.Forbid, Glob{g, pos})
	}
	al := itemLines(n, "allow")
	for i, a := range raw.Allow {
		pos := Pos{file, lineAt(al, i)}
		if err := checkGlob(a.Path); err != nil {
			errs = append(errs, errorf(pos, "policy: allow: %v", err))
			continue
		}
		if strings.TrimSpace(a.Reason) == "" {
			errs = append(errs, errorf(pos, "policy: allow %q has no reason; say why the path may hold what the policy refuses (reason: ...)", a.Path))
			continue
		}
		p.Allow = append(p.Allow, Allow{Glob{a.Path, pos}, a.Reason})
	}
	if s := raw.MaxFileSize; s != "" {
		v, err := ParseSize(s)
		if err != nil {
			errs = append(errs, errorf(Pos{file, keyLine(n, "max_file_size")}, "policy: max_file_size: %v", err))
		}
		p.MaxFileSize = v
	}
	return p, errors.Join(errs...)
}

// Allowed returns the allow rule that exempts volume path p, if any.
func (p ContentPolicy) Allowed(vp string) (Allow, bool) {
	for _, a := range p.Allow {
		if glob.Match(a.Pattern, vp) {
			return a, true
		}
	}
	return Allow{}, false
}
