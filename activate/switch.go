package activate

import (
	"context"
	"errors"
)

// ErrNotActive is returned by Switch when the volume is not the image
// active on the root.
var ErrNotActive = errors.New("not the active image")

// Switch repoints the active link of a deployed service to another bin
// the active image carries (/opt/openlibrary/olsystem ->
// /1/opt/openlibrary/deploys/olsystem/BIN), and rewrites the unit files
// that come from it, journaled like every other step. The choice holds
// when activate runs again with the same image, at every boot; the next
// image activated links its own bins.
func Switch(ctx context.Context, opts Options, service, bin string) (*Report, error) {
	opts.switchTo = map[string]string{service: bin}
	return Activate(ctx, opts)
}
