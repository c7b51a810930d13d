// Package trace carries, in a context, what the command line wants to hear
// of work done deep below it (as net/http/httptrace does for requests):
// notes for -v, and the progress of long reads of images. Packages report
// to the context they are given, and stay silent when it asks for nothing.
package trace

import (
	"context"
	"fmt"
)

type notesKey struct{}

type readsKey struct{}

// WithNotes returns ctx with fn receiving the notes made under it, one
// line each, without the newline. fn may be called from several
// goroutines at once.
func WithNotes(ctx context.Context, fn func(line string)) context.Context {
	return context.WithValue(ctx, notesKey{}, fn)
}

// Notef makes a note under ctx, formatted as by fmt.Sprintf; nothing, and
// no formatting, when no one listens.
func Notef(ctx context.Context, format string, args ...any) {
	if fn, _ := ctx.Value(notesKey{}).(func(string)); fn != nil {
		fn(fmt.Sprintf(format, args...))
	}
}

// Reads is told of each image opened for reading, by name and the bytes
// a full read of it covers; it returns what to call with the bytes read
// so far as reading goes on, or nil to hear nothing of that image.
type Reads func(name string, total int64) func(read int64)

// WithReads returns ctx with fn told of the images read under it.
func WithReads(ctx context.Context, fn Reads) context.Context {
	return context.WithValue(ctx, readsKey{}, fn)
}

// ReadsOf returns the Reads of ctx, or nil.
func ReadsOf(ctx context.Context) Reads {
	fn, _ := ctx.Value(readsKey{}).(Reads)
	return fn
}
