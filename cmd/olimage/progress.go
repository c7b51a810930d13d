package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// plainEvery is how often progress is printed as plain lines when stderr
// is not a terminal (a CI log): often enough to show life, rarely enough
// to keep the log short. Tests set it to 0.
var plainEvery = 10 * time.Second

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
