package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// progress draws one status line on a terminal for the images being built.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	state map[string][2]int64
	last  time.Time
}

func newProgress(w io.Writer, on bool) *progress {
	return &progress{w: w, on: on, state: map[string][2]int64{}}
}

// update returns the callback for one role, or nil when progress is off.
func (p *progress) update(role string) func(done, total int64) {
	if !p.on {
		return nil
	}
	return func(done, total int64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.state[role] = [2]int64{done, total}
		if time.Since(p.last) < 100*time.Millisecond {
			return
		}
		p.last = time.Now()
		p.draw()
	}
}

func (p *progress) done(role string) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.state, role)
	fmt.Fprint(p.w, "\r\033[K")
	if len(p.state) > 0 {
		p.draw()
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
		s := p.state[n]
		pct := 0
		if s[1] > 0 {
			pct = int(s[0] * 100 / s[1])
		}
		parts = append(parts, fmt.Sprintf("%s %3d%% of %s", n, pct, mib(s[1])))
	}
	fmt.Fprintf(p.w, "\r\033[Kbuilding %s", strings.Join(parts, ", "))
}
