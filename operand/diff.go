package operand

import (
	"context"

	"github.com/internetarchive/olimage/diff"
)

// DiffOpener opens the operands of diff.Compare as Open does with opts,
// reading each as Compare asks: from its manifest, hashed, or listed.
func DiffOpener(opts Options) diff.Opener { return diffOpener(opts) }

type diffOpener Options

func (diffOpener) IsImage(name string) bool { return IsImage(name) }

func (o diffOpener) Open(ctx context.Context, name string, read diff.Read) (diff.Side, error) {
	var s *Operand
	var err error
	if read == diff.ReadListing {
		s, err = OpenImage(ctx, name, Listing)
	} else {
		opts := Options(o)
		opts.Manifests = read == diff.ReadManifests
		s, err = Open(ctx, name, opts)
	}
	if err != nil {
		return nil, err // not a nil *Operand in a non-nil Side
	}
	return s, nil
}
