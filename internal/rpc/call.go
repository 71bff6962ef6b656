package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// StreamOpener is the part of a transport connection a caller uses.
type StreamOpener interface {
	OpenStream(ctx context.Context) (*quic.Stream, error)
}

// StreamPool is a connection that keeps idle streams for reuse
// (transport.Conn). Call runs unary calls on its streams one after another:
// a stream carries a request, its response, the next request, and so on.
type StreamPool interface {
	StreamOpener
	// TakeStream returns an idle stream or nil.
	TakeStream() *quic.Stream
	// ReleaseStream keeps a stream, idle between calls, for TakeStream.
	ReleaseStream(st *quic.Stream)
}

// Call sends req on a stream of pool and returns the response envelope.
// Transport failures are returned as errors; server errors are in the
// response's Error field. The stream is an idle one when there is one and is
// kept for reuse afterwards.
func Call(ctx context.Context, pool StreamPool, req *Request) (*Response, error) {
	return CallBy(ctx, pool, req, time.Time{})
}

// CallBy is Call ending at deadline as well as with ctx (a zero deadline:
// ctx alone). The deadline costs no allocation (a pooled timer), where a
// context with a deadline costs a timer and a context per call: clients
// bound calls without a deadline of their own this way.
func CallBy(ctx context.Context, pool StreamPool, req *Request, deadline time.Time) (*Response, error) {
	if st := pool.TakeStream(); st != nil {
		resp, reusable, err := callOn(ctx, st, req, deadline)
		if err == nil {
			if reusable {
				pool.ReleaseStream(st)
			}
			return resp, nil
		}
		if !errors.Is(err, errStreamEnded) || ctx.Err() != nil || passed(deadline) {
			return nil, err
		}
		// the server ended the idle stream before it read the request
	}
	st, err := pool.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening stream for %s: %w", req.Op, err)
	}
	resp, reusable, err := callOn(ctx, st, req, deadline)
	if err != nil {
		return nil, err
	}
	if reusable {
		pool.ReleaseStream(st)
	}
	return resp, nil
}

// errStreamEnded marks a call on a kept stream that the server had ended
// between calls: the request was not read, so it may be sent again. A server
// ends a stream cleanly only between calls; after reading a request it
// answers or resets the stream.
var errStreamEnded = errors.New("the server ended the stream before the call")

// passed reports whether a non-zero deadline has passed.
func passed(deadline time.Time) bool {
	return !deadline.IsZero() && !time.Now().Before(deadline)
}

// callOn runs one call on st, ending at deadline (unless zero) or with ctx.
// After a success st may carry the next call when reusable; on error st is
// reset.
func callOn(ctx context.Context, st *quic.Stream, req *Request, deadline time.Time) (resp *Response, reusable bool, err error) {
	// ctx's end and the deadline reset st, which ends a blocked write or read
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { resetStream(st) })
	}
	if !deadline.IsZero() {
		t := armReset(st, time.Until(deadline))
		defer t.release()
		ctxStop := stop
		stop = func() bool {
			armed := t.disarm()
			return ctxStop() && armed
		}
	}
	fail := func(err error) error {
		stop()
		st.CancelRead(0)
		st.CancelWrite(0)
		if passed(deadline) && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return withCause(ctx, err)
	}
	if err := WriteFrame(st, req); err != nil {
		// a write fails only before the whole request was queued, so the
		// server cannot have read all of it
		return nil, false, fmt.Errorf("sending %s: %w: %w", req.Op, errStreamEnded, fail(err))
	}
	resp = new(Response)
	if err := ReadFrame(st, resp); err != nil {
		if errors.Is(err, errNoFrame) && errors.Is(err, io.ErrUnexpectedEOF) {
			// a clean end of the stream before any answer
			return nil, false, fmt.Errorf("reading %s response: %w: %w", req.Op, errStreamEnded, fail(err))
		}
		return nil, false, fmt.Errorf("reading %s response: %w: %w", req.Op, ErrOutcomeUnknown, fail(err))
	}
	if !stop() {
		return resp, false, nil // ctx ended as the answer arrived: st is being reset
	}
	return resp, true, nil
}

// resetStream abandons a call: it resets both directions of st.
func resetStream(st *quic.Stream) {
	st.CancelRead(2)
	st.CancelWrite(2)
}

// resetTimer resets a stream when it fires: a call's deadline without a
// timer and a context per call. Timers are pooled.
type resetTimer struct {
	t       *time.Timer
	mu      sync.Mutex
	st      *quic.Stream // armed: the stream to reset; nil once disarmed or fired
	stopped bool         // the last disarm stopped t before it fired: fire will not run late
}

var resetTimers = sync.Pool{New: func() any {
	rt := &resetTimer{}
	rt.t = time.AfterFunc(time.Hour, rt.fire)
	rt.t.Stop()
	return rt
}}

// armReset returns a pooled timer that resets st after d.
func armReset(st *quic.Stream, d time.Duration) *resetTimer {
	rt := resetTimers.Get().(*resetTimer)
	rt.mu.Lock()
	rt.st = st
	rt.mu.Unlock()
	rt.t.Reset(d)
	return rt
}

func (rt *resetTimer) fire() {
	rt.mu.Lock()
	st := rt.st
	rt.st = nil
	rt.mu.Unlock()
	if st != nil {
		resetStream(st)
	}
}

// disarm stops the timer and reports whether it had not fired.
func (rt *resetTimer) disarm() bool {
	stopped := rt.t.Stop()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.stopped = rt.stopped || stopped
	armed := rt.st != nil
	rt.st = nil
	return armed
}

// release disarms the timer and returns it to the pool, unless its function
// may still run (it fired): reused, it could reset the next user's stream.
func (rt *resetTimer) release() {
	rt.disarm()
	if rt.stopped {
		rt.stopped = false
		resetTimers.Put(rt)
	}
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
