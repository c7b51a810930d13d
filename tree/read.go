package tree

import (
	"context"
	"io"
)

// ContextReader returns r failing with ctx's error once ctx is done. File
// content in an image can be terabytes of holes, read without a system
// call: a copy or a hash of it must check for interruption as it goes.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return ctxReader{ctx, r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
