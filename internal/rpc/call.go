package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/quic-go/quic-go"
)

// StreamOpener is the part of a transport connection a caller uses.
type StreamOpener interface {
	OpenStream(ctx context.Context) (*quic.Stream, error)
}

// Call sends req on a new stream of c and returns the response envelope.
// Transport failures are returned as errors; server errors are in the
// response's Error field.
func Call(ctx context.Context, c StreamOpener, req *Request) (*Response, error) {
	st, stop, err := open(ctx, c, req)
	if err != nil {
		return nil, err
	}
	defer stop()
	defer st.CancelRead(0)
	var resp Response
	if err := ReadFrame(st, &resp); err != nil {
		return nil, fmt.Errorf("reading %s response: %w: %w", req.Op, ErrOutcomeUnknown, withCause(ctx, err))
	}
	return &resp, nil
}

// ErrOutcomeUnknown marks a call that failed after its request was sent:
// the server may have executed it. Errors without it mean the request never
// left, so it is safe to send again.
var ErrOutcomeUnknown = errors.New("the request was sent but no answer came back")

// withCause adds ctx's error to err, a failure of a call's stream, when ctx
// ended (or its deadline passed, which the stream, sharing that deadline,
// may notice first): the stream then failed because of it, and callers can
// match context.Canceled or context.DeadlineExceeded with errors.Is.
func withCause(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if _, ok := ctx.Deadline(); ok && cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// the stream's deadline is the context's (see open), and the stream
		// may notice it a moment before the context does
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// CallStream sends req and returns the response envelope and, when it is a
// success, a reader of the bytes that follow it. The caller closes the reader.
func CallStream(ctx context.Context, c StreamOpener, req *Request) (*Response, io.ReadCloser, error) {
	st, stop, err := open(ctx, c, req)
	if err != nil {
		return nil, nil, err
	}
	var resp Response
	if err := ReadFrame(st, &resp); err != nil {
		st.CancelRead(0)
		stop()
		return nil, nil, fmt.Errorf("reading %s response: %w", req.Op, withCause(ctx, err))
	}
	if resp.Error != nil {
		st.CancelRead(0)
		stop()
		return &resp, nil, nil
	}
	return &resp, streamReader{st, stop}, nil
}

type streamReader struct {
	st   *quic.Stream
	stop func() bool
}

func (r streamReader) Read(p []byte) (int, error) { return r.st.Read(p) }
func (r streamReader) Close() error {
	r.st.CancelRead(0)
	r.stop()
	return nil
}

// open starts a call; stop releases the context watch and must be called
// when the call ends.
func open(ctx context.Context, c StreamOpener, req *Request) (*quic.Stream, func() bool, error) {
	st, err := c.OpenStream(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("opening stream for %s: %w", req.Op, err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	}
	// the closure may still run after open returns (stop cannot stop a
	// running AfterFunc), so it must not see a variable open later changes
	stop := context.AfterFunc(ctx, func() {
		st.CancelRead(2)
		st.CancelWrite(2)
	})
	if err := WriteFrame(st, req); err != nil {
		st.CancelRead(0)
		stop()
		return nil, nil, fmt.Errorf("sending %s: %w", req.Op, withCause(ctx, err))
	}
	// Close fails when the server already stopped reading (STOP_SENDING),
	// which it does as soon as it has the whole request, possibly before
	// this Close: the request was delivered, so the response decides the
	// outcome. Failing here would report an applied write as not sent.
	_ = st.Close()
	return st, stop, nil
}
