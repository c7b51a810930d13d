package overlays

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// Policy checks the merged tree against the role's content policy and
// returns every finding joined, each naming the overlay and the source
// file the entry came from. validate and build refuse a role with any.
func (res *Result) Policy(ctx context.Context) error {
	var scans *policy.Scans
	if res.r.shared != nil && res.r.shared.multi {
		scans = &res.r.shared.scans
	}
	fs, err := policy.Apply(ctx, res.r.fleet, res.Role.Policy, res.Tree.Entries, res.source, scans)
	if err != nil {
		return err
	}
	return errors.Join(res.secretsOut(), policy.Join(fs))
}

// ErrSecretInImage marks a declared secret that an overlay supplies.
var ErrSecretInImage = errors.New("a declared secret is in the image")

// secretsOut checks that no overlay supplies a path the role declares as
// a secret, which the VM supplies and the image must never hold.
func (res *Result) secretsOut() error {
	var errs []error
	for _, s := range res.Role.Secrets {
		e := res.Tree.Get(s.Path)
		if e == nil {
			continue
		}
		src, _ := res.source(e)
		errs = append(errs, fmt.Errorf("%s: secret /%s is supplied by overlay %q (%s); a secret is never built in: remove it from the source and put it on the VM: %w",
			res.r.fleet.Where(s.Pos), s.Path, e.Overlay(), src, ErrSecretInImage))
	}
	return errors.Join(errs...)
}

// source names where entry e came from: the file of a directory source,
// archive:member of a tar source, or the role file and line of an inline
// entry, and whether it is the last.
func (res *Result) source(e *tree.Entry) (string, bool) {
	f := res.r.fleet
	var o *roles.Overlay
	for _, c := range res.Role.Overlays {
		if c.Name == e.Overlay() {
			o = c
		}
	}
	if o == nil {
		return "", false
	}
	rel := e.Path()
	switch o.Kind {
	case roles.FilesOverlay:
		for _, fe := range o.Files {
			if fe.Path == e.Path() {
				return f.Where(fe.Pos), true
			}
		}
		return f.Where(o.Pos), true
	case roles.DeployOverlay:
		// opt/openlibrary/deploys/SERVICE/BIN/REL
		prefix := path.Join(tree.DeploysDir, o.Deploy.Service) + "/"
		if !strings.HasPrefix(rel, prefix) {
			return f.Where(o.Pos), false
		}
		rel = strings.TrimPrefix(rel, prefix)
		i := strings.IndexByte(rel, '/')
		if i < 0 {
			return f.Rel(o.Source), false
		}
		rel = rel[i+1:]
		if fi, err := os.Stat(o.Source); err == nil && !fi.IsDir() {
			return f.Rel(o.Source) + ":" + rel, false
		}
	case roles.TarOverlay:
		return f.Rel(o.Source) + ":" + rel, false
	}
	return f.Rel(filepath.Join(o.Source, filepath.FromSlash(rel))), false
}
