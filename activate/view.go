package activate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// view is the root file system as planned changes would leave it: the
// real file system, with the paths a step changes overridden. Planning
// against a view is what lets a dry run show the same steps a real run
// takes.
type view struct {
	root string
	over map[string]override
}

type override struct {
	kind int    // kindAbsent, kindDir or kindSymlink; or kindFrom
	text string // symlink text
	from string // kindFrom: the path, relative to the root, now found at this one
}

const (
	kindAbsent = iota
	kindDir
	kindSymlink
	kindOther
	kindFrom
)

// node is what a view finds at a path.
type node struct {
	kind int // kindAbsent, kindDir, kindSymlink or kindOther
	text string
	fi   fs.FileInfo
	real string // the real path, for messages
	// written is true for a file a planned write leaves, whose content
	// is text.
	written bool
}

func (n node) describe() string {
	switch n.kind {
	case kindAbsent:
		return "missing"
	case kindDir:
		return "a directory"
	case kindSymlink:
		return "a symlink to " + n.text
	}
	if n.fi != nil {
		return describe(n.real, n.fi)
	}
	return "a file"
}

// apply records in the view what a step leaves at its path.
func (v *view) apply(c Change) {
	switch c.Op {
	case OpMkdir:
		v.over[c.Path] = override{kind: kindDir}
	case OpWrite:
		v.over[c.Path] = override{kind: kindOther, text: c.Content}
	case OpMove, OpUnlink, OpRmdir, OpRemove:
		v.over[c.Path] = override{kind: kindAbsent}
	case OpLink:
		v.over[c.Path] = override{kind: kindSymlink, text: c.Target}
	case OpRestore:
		v.over[c.Path] = override{kind: kindFrom, from: c.Backup}
	}
}

// lstat says what is at rel (relative to the root), not following a
// symlink at rel itself. The caller has checked rel's parents.
func (v *view) lstat(rel string) (node, error) {
	for q := rel; q != ""; q = parentOf(q) {
		o, ok := v.over[q]
		if !ok {
			continue
		}
		rest := rel[len(q):]
		switch o.kind {
		case kindFrom:
			return v.real(o.from + rest)
		case kindDir:
			if rest == "" {
				return node{kind: kindDir}, nil
			}
		case kindSymlink:
			if rest == "" {
				return node{kind: kindSymlink, text: o.text}, nil
			}
		case kindOther: // a file olimage writes; text is its content
			if rest == "" {
				return node{kind: kindOther, text: o.text, written: true}, nil
			}
		}
		return node{kind: kindAbsent}, nil
	}
	return v.real(rel)
}

func (v *view) real(rel string) (node, error) {
	p := filepath.Join(v.root, rel)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return node{kind: kindAbsent}, nil
	}
	if err != nil {
		return node{}, err
	}
	n := node{kind: kindOther, fi: fi, real: p}
	switch {
	case fi.IsDir():
		n.kind = kindDir
	case fi.Mode()&fs.ModeSymlink != 0:
		n.kind = kindSymlink
		n.text, err = os.Readlink(p)
	}
	return n, err
}
