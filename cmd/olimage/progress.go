package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/internal/trace"
)

// plainEvery is how often progress is printed as plain lines when stderr
// is not a terminal (a CI log): often enough to show life, rarely enough
// to keep the log short. $OLIMAGE_PROGRESS_EVERY (a Go duration, for tests
// of the CLI as a program) sets it; tests in process set it to 0.
var plainEvery = progressEvery(os.Getenv("OLIMAGE_PROGRESS_EVERY"), 10*time.Second)

func progressEvery(env string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env); err == nil && d >= 0 {
		return d
	}
	return def
}

// addProgressFlag adds --progress to a command that does long work.
func addProgressFlag(cmd *cobra.Command, on *bool) {
	cmd.Flags().BoolVar(on, "progress", true, "show progress on stderr: a line redrawn on a terminal, else a plain line every 10s")
}

// progress shows how far long work (images being built, pulled, pushed)
// has come, with rate and time left: one line redrawn on a terminal,
// plain lines every plainEvery otherwise.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	on       bool
	terminal bool
	state    map[string]*task
	last     time.Time
}

type task struct {
	done, total int64
	start       time.Time
}

// newProgress returns progress reporting to w, or reporting nothing
// unless on.
func newProgress(w io.Writer, on bool) *progress {
	return &progress{w: w, on: on, terminal: isTerminal(w), state: map[string]*task{}, last: time.Now()}
}

// update returns the callback for one task, or nil when progress is off.
func (p *progress) update(name string) func(done, total int64) {
	if !p.on {
		return nil
	}
	p.mu.Lock()
	p.state[name] = &task{start: time.Now()}
	p.mu.Unlock()
	return func(done, total int64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		t := p.state[name]
		if t == nil {
			return
		}
		t.done, t.total = done, total
		every := plainEvery
		if p.terminal {
			every = 100 * time.Millisecond
		}
		if time.Since(p.last) < every {
			return
		}
		p.last = time.Now()
		p.draw()
	}
}

// reads returns ctx under which every image opened for reading shows how
// far its reading has come, as a task named for the image, and the
// function that ends those tasks, to call before printing results.
func (p *progress) reads(ctx context.Context) (context.Context, func()) {
	if !p.on {
		return ctx, func() {}
	}
	var mu sync.Mutex
	var names []string
	ctx = trace.WithReads(ctx, func(name string, total int64) func(int64) {
		mu.Lock()
		names = append(names, name)
		mu.Unlock()
		up := p.update(name)
		var most atomic.Int64
		return func(read int64) {
			// Reads on several goroutines report out of order: show
			// the most read, which metadata read twice can take past
			// the total.
			for m := most.Load(); read > m; m = most.Load() {
				if most.CompareAndSwap(m, read) {
					up(min(read, total), total)
					return
				}
			}
		}
	})
	return ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			p.done(n)
		}
		names = nil
	}
}

func (p *progress) done(name string) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.state, name)
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
		if len(p.state) > 0 {
			p.draw()
		}
	}
}

func (p *progress) draw() {
	names := make([]string, 0, len(p.state))
	for n := range p.state {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, n+" "+p.state[n].String())
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", strings.Join(parts, ", "))
		return
	}
	for _, s := range parts {
		fmt.Fprintln(p.w, s)
	}
}

// String says how far a task has come: percent, rate and time left.
func (t *task) String() string {
	pct := 0
	if t.total > 0 {
		pct = int(t.done * 100 / t.total)
	}
	s := fmt.Sprintf("%3d%% of %s", pct, mib(t.total))
	secs := time.Since(t.start).Seconds()
	if secs < 0.5 || t.done == 0 {
		return s
	}
	rate := float64(t.done) / secs
	s += fmt.Sprintf(", %s/s", mib(int64(rate)))
	if left := float64(t.total-t.done) / rate; t.total > t.done {
		s += fmt.Sprintf(", about %s left", time.Duration(left*float64(time.Second)).Round(time.Second))
	}
	return s
}
