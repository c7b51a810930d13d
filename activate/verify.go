package activate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/internetarchive/olimage/manifest"
)

// ErrVerify is wrapped by the errors of a volume whose manifest does not
// match the volume: wrong schema, or a link target missing or of another
// type. Activation refuses such a volume unless forced.
var ErrVerify = errors.New("volume verification failed")

// ErrUnsafe is wrapped by the errors of an activation plan olimage will
// not carry out, forced or not: a link path outside the root, inside the
// state directory or the volume, below a symlink olimage did not make, or
// below something that is not a directory.
var ErrUnsafe = errors.New("refused")

// MaxManifestSize bounds the manifest activate and status read from a
// volume: about a million entries.
const MaxManifestSize = 256 << 20

// ErrNoVolume is wrapped by the error of a volume path holding no
// manifest: nothing olimage built is mounted there.
var ErrNoVolume = errors.New("nothing olimage built is mounted here")

// ReadManifest reads the manifest of the volume mounted at dir: a regular
// file of at most MaxManifestSize bytes, reached through no symlink.
func ReadManifest(dir string) (*manifest.Manifest, error) {
	p := filepath.Join(dir, manifest.Path)
	b, err := readSmall(dir, manifest.Path, MaxManifestSize, false)
	if err != nil {
		return nil, err
	}
	var m manifest.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &m, nil
}

// Verify checks the manifest of the volume mounted at dir against the
// volume: the schema is olimage.manifest/v1, and every link target of the
// activation plan exists in the volume (not followed) with the type the
// manifest's entry for it gives, and for a symlink its text; then every
// entry of the manifest against the volume, file contents included.
func Verify(dir string, m *manifest.Manifest) error {
	var errs []error
	if m.Schema != manifest.ImageSchema {
		errs = append(errs, fmt.Errorf("%s: schema %q, want %q: %w", filepath.Join(dir, manifest.Path), m.Schema, manifest.ImageSchema, ErrVerify))
	}
	if m.Activation == nil {
		return errors.Join(append(errs, fmt.Errorf("%s: no activation plan: %w", filepath.Join(dir, manifest.Path), ErrVerify))...)
	}
	entries := map[string]*manifest.Entry{}
	for i := range m.Entries {
		entries[m.Entries[i].Path] = &m.Entries[i]
	}
	for _, l := range m.Activation.Links {
		if checkRel(l.Target) != nil {
			continue // reported by checkPlan
		}
		p := filepath.Join(dir, l.Target)
		e := entries[l.Target]
		if e == nil {
			errs = append(errs, fmt.Errorf("%s: link target %s is not in the manifest: %w", dir, l.Target, ErrVerify))
			continue
		}
		fi, err := lstatBelow(dir, l.Target)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: link target: %w: %w", p, err, ErrVerify))
			continue
		}
		var ok bool
		switch m := fi.Mode(); e.Type {
		case "file", "hardlink":
			ok = m.IsRegular()
		case "dir":
			ok = m.IsDir()
		case "symlink":
			ok = m&fs.ModeSymlink != 0
			if ok {
				if t, err := os.Readlink(p); err != nil || t != e.Target {
					errs = append(errs, fmt.Errorf("%s: symlink to %q, the manifest says %q: %w", p, t, e.Target, ErrVerify))
				}
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s: the manifest says %s, the volume holds %s: %w", p, e.Type, describe(p, fi), ErrVerify))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return errors.Join(verifyEntries(dir, m)...)
}

// lstatBelow stats dir/rel without following a symlink in any component
// below dir.
func lstatBelow(dir, rel string) (fs.FileInfo, error) {
	cur := dir
	parts := splitPath(rel)
	for i, c := range parts {
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if err != nil {
			return nil, err
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return nil, fmt.Errorf("%s: not a directory (%s)", cur, describe(cur, fi))
		}
		if i == len(parts)-1 {
			return fi, nil
		}
	}
	return nil, fs.ErrNotExist
}

// checkPlan checks the activation plan's paths, whatever --force says:
// every path and target clean and relative, no link inside another, none
// in the state directory or the volume.
func checkPlan(a *manifest.Activation, volume string) error {
	var errs []error
	vrel := volume[1:]
	seen := map[string]bool{}
	for _, l := range a.Links {
		if err := checkRel(l.Path); err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w: %w", l.Path, err, ErrUnsafe))
			continue
		}
		if err := checkRel(l.Target); err != nil {
			errs = append(errs, fmt.Errorf("link %s: target: %w: %w", l.Path, err, ErrUnsafe))
		}
		switch {
		case under(l.Path, StateDir) || under(StateDir, l.Path):
			errs = append(errs, fmt.Errorf("/%s: %w: olimage keeps its state in /%s", l.Path, ErrUnsafe, StateDir))
		case vrel == "" || under(l.Path, vrel) || under(vrel, l.Path):
			errs = append(errs, fmt.Errorf("/%s: %w: the volume is mounted at %s", l.Path, ErrUnsafe, volume))
		case seen[l.Path]:
			errs = append(errs, fmt.Errorf("/%s: %w: linked twice", l.Path, ErrUnsafe))
		}
		seen[l.Path] = true
	}
	for _, l := range a.Links {
		for p := parentOf(l.Path); p != ""; p = parentOf(p) {
			if seen[p] {
				errs = append(errs, fmt.Errorf("/%s: %w: inside /%s, which is linked too", l.Path, ErrUnsafe, p))
			}
		}
	}
	return errors.Join(errs...)
}
