package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"

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
	// Memory, if not 0, is the bytes the roles built at once may take
	// together, by their MemoryEstimate: a role starts when its estimate
	// fits beside those of the roles being built (or alone, if it is
	// larger than Memory).
	Memory int64
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
	var budget *semaphore.Weighted
	if opts.Memory > 0 {
		budget = semaphore.NewWeighted(opts.Memory)
	}
	par.Each(len(names), opts.Jobs, nil, func(_, k int) {
		o := &out[k]
		o.Role = names[k]
		if err := f.Broken[o.Role]; err != nil {
			o.Err = err // what is wrong with it, rather than that something is
		} else if r, err := f.Role(o.Role); err != nil {
			o.Err = err
		} else if r.Abstract {
			o.Err = fmt.Errorf("role %s is abstract: roles extend it, it is not built", o.Role)
		} else {
			release, est, err := admit(ctx, r, ro.Shared, budget, opts.Memory)
			if err != nil {
				o.Err = err
			} else {
				defer release() // after Done: the role's memory is free then
				ro := ro
				if opts.Started != nil {
					ro.Progress = opts.Started(o.Role)
				}
				o.Result, o.Err = Build(ctx, f, r, ro)
				if o.Result != nil {
					o.Result.MemoryEstimate = est
				}
			}
		}
		if opts.Done != nil {
			mu.Lock()
			opts.Done(*o)
			mu.Unlock()
		}
	})
	return out, nil
}

// admit waits until role r's memory estimate fits in budget (nil: no
// budget) of size bytes, takes it, and returns the function that gives it
// back, and the estimate.
func admit(ctx context.Context, r *roles.Role, shared *overlays.Shared, budget *semaphore.Weighted, size int64) (release func(), est int64, err error) {
	est = MemoryEstimate(r, shared)
	if budget == nil {
		return func() {}, est, nil
	}
	w := min(est, size) // a role larger than the budget runs alone
	if err := budget.Acquire(ctx, w); err != nil {
		return nil, 0, err
	}
	return func() { budget.Release(w) }, est, nil
}

// Memory a build takes, measured with build --json's peak_rss on the
// bench fleet: about 24 MiB besides its entries (the process, the
// writer's buffers), and per entry of its tree about 2 KiB (the entry, its
// inode and blocks in the layout, its line of the manifest).
const (
	buildBase     = 24 << 20
	buildPerEntry = 2 << 10
)

// MemoryEstimate is the peak memory a build of role r is expected to
// take, from the entries its overlays supply. With shared, the dir and tar
// sources are counted as read for the build (once for every role);
// without, only inline entries are counted. A source that cannot be read
// counts for nothing: the build says what is wrong with it.
func MemoryEstimate(r *roles.Role, shared *overlays.Shared) int64 {
	var n int
	for _, o := range r.Overlays {
		switch {
		case shared != nil:
			k, _ := shared.Entries(o)
			n += k
		case o.Kind == "files":
			n += len(o.Files)
		}
	}
	return buildBase + int64(n)*buildPerEntry
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
