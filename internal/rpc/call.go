package rpc

import (
	"context"
	"fmt"
	"io"

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
		return nil, fmt.Errorf("reading %s response: %w", req.Op, err)
	}
	return &resp, nil
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
		return nil, nil, fmt.Errorf("reading %s response: %w", req.Op, err)
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
func open(ctx context.Context, c StreamOpener, req *Request) (st *quic.Stream, stop func() bool, err error) {
	st, err = c.OpenStream(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("opening stream for %s: %w", req.Op, err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	}
	stop = context.AfterFunc(ctx, func() {
		st.CancelRead(2)
		st.CancelWrite(2)
	})
	if err := WriteFrame(st, req); err != nil {
		st.CancelRead(0)
		stop()
		return nil, nil, fmt.Errorf("sending %s: %w", req.Op, err)
	}
	if err := st.Close(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("sending %s: %w", req.Op, err)
	}
	return st, stop, nil
}
