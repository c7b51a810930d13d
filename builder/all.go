package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/overlays"
	"github.com/internetarchive/olimage/roles"
)

// AllOptions control BuildAll.
type AllOptions struct {
	// Options apply to every role; BuildAll sets Progress and Shared.
	Options
	// Jobs is how many roles are built at once, 1 or more.
	Jobs int
	// Started, if set, is called as a role's build starts and returns the
	// role's Progress callback (nil for none).
	Started func(role string) func(done, total int64)
	// Done, if set, is called as each role finishes, one call at a time.
	Done func(Outcome)
}

// Outcome is what became of one role of BuildAll: its image, or why
// there is none.
type Outcome struct {
	Role   string
	Result *Result
	Err    error
}

// UsageError is a request BuildAll refuses before building anything.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{fmt.Sprintf(format, args...)} }

// BuildAll builds the named roles of fleet f, Jobs at a time, into
// opts.Output: a directory, where each image gets its FileName, or one
// image file (IsImageFile) when one role is named. Roles read a source
// they share once. It returns an error, building nothing, for a request
// it cannot carry out for any role (duplicate names, Jobs below 1, an
// image file for several roles, an output directory it cannot make);
// otherwise one Outcome per name, in the order given, each with its
// image or its own error.
func BuildAll(ctx context.Context, f *roles.Fleet, names []string, opts AllOptions) ([]Outcome, error) {
	seen := map[string]bool{}
	for _, name := range names {
		// Two builds of one role would race to the same output file.
		if seen[name] {
			return nil, usagef("role %s named twice", name)
		}
		seen[name] = true
	}
	if opts.Jobs < 1 {
		return nil, usagef("%d jobs: want 1 or more", opts.Jobs)
	}
	dir := opts.Output != "-" && !IsImageFile(opts.Output)
	if !dir && len(names) != 1 {
		return nil, usagef("output %s takes one role, got %d", opts.Output, len(names))
	}
	if dir && opts.Output != "" {
		if err := os.MkdirAll(opts.Output, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrOutput, err)
		}
	}
	ro := opts.Options
	if len(names) > 1 {
		ro.Shared = overlays.NewShared(ctx, f, opts.TmpDir)
		defer ro.Shared.Close()
	}
	out := make([]Outcome, len(names))
	var mu sync.Mutex // Done is called one role at a time
	par.Each(len(names), opts.Jobs, nil, func(_, k int) {
		o := &out[k]
		o.Role = names[k]
		ro := ro
		if opts.Started != nil {
			ro.Progress = opts.Started(o.Role)
		}
		if r, err := f.Role(o.Role); err != nil {
			o.Err = err
		} else if r.Abstract {
			o.Err = fmt.Errorf("role %s is abstract: roles extend it, it is not built", o.Role)
		} else {
			o.Result, o.Err = Build(ctx, f, r, ro)
		}
		if opts.Done != nil {
			mu.Lock()
			opts.Done(*o)
			mu.Unlock()
		}
	})
	return out, nil
}

// IsImageFile reports whether output names one image file rather than a
// directory for images: a name ending in .img (.gpt.img too), .img.zst or
// .qcow2 that is not an existing directory, and not ending in a slash.
func IsImageFile(output string) bool {
	if strings.HasSuffix(output, string(filepath.Separator)) {
		return false
	}
	if fi, err := os.Stat(output); err == nil && fi.IsDir() {
		return false
	}
	return strings.HasSuffix(output, ".img") || strings.HasSuffix(output, ".img.zst") || strings.HasSuffix(output, ".qcow2")
}
