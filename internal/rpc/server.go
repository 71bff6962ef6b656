package rpc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
)

// Conn is the part of a transport connection the server uses.
type Conn interface {
	AcceptStream(ctx context.Context) (*quic.Stream, error)
	Exporter() ([]byte, error)
	Context() context.Context
}

// Server serves a Registry on accepted connections. Its fields are set once
// before the first ServeConn.
type Server struct {
	Registry *Registry
	// Credential is the cluster's client credential; each request must carry
	// auth.Proof(Credential, connection exporter), or the same proof of
	// NodeCredential.
	Credential []byte
	// NodeCredential is the node secret: a request proving it comes from
	// another node of the cluster and may call node-only operations
	// (Registry.NodeOnly). Empty: no caller is a node.
	NodeCredential []byte
	// Forward, when set, receives requests that failed with NOT_LEADER and were
	// not forwarded already; its response is returned to the caller as is.
	Forward func(ctx context.Context, req *Request) (*Response, error)
	// Observe, when set, is called after every call with its outcome.
	Observe func(op string, code api.Code, elapsed time.Duration)
	// ReadTimeout bounds the time to receive a stream's first request
	// (default 10s), so a client that opens streams and never writes cannot
	// hold them.
	ReadTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a stream after an
	// answer (default 30s; longer than transport.StreamIdleTimeout, how long
	// a client keeps an idle stream). The stream then ends cleanly.
	IdleTimeout time.Duration
	// CallTimeout bounds one handler call (default 60s).
	CallTimeout time.Duration
	Logger      *slog.Logger

	workers workers
}

// ServeConn accepts streams on c until it closes. A stream carries unary
// calls one after another (request, answer, next request...) until the
// caller closes it, or one streaming call. Streams are served concurrently
// on reused goroutines (see workers). ServeConn returns when c is done and
// all its calls have finished.
func (s *Server) ServeConn(ctx context.Context, c Conn) {
	var wg sync.WaitGroup
	// every request carries its own proof (see auth.ConnVerifier)
	callers := authenticator{
		client: auth.NewConnVerifier(s.Credential, c.Exporter).Verify,
		node:   auth.NewConnVerifier(s.NodeCredential, c.Exporter).Verify,
	}
	defer wg.Wait()
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		s.workers.run(func() {
			defer wg.Done()
			s.serveStream(ctx, st, callers)
		})
	}
}

// authenticator checks the proofs of one connection's requests.
type authenticator struct{ client, node func(proof []byte) bool }

// serveStream serves the calls of one stream. It ends the stream cleanly
// (FIN) only between calls; once it has read a request it answers it or
// resets the stream, so a caller seeing a clean end before any answer knows
// the request was not read (see Call).
func (s *Server) serveStream(ctx context.Context, st *quic.Stream, callers authenticator) {
	// The stream's context is its calls' context: it ends when the server
	// stops, when the caller abandons the stream, and when a wait for a
	// request or a call outlasts its timeout. Then the stream stops
	// reading, which ends a wait, and ends after the call in progress.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(st.Context(), func() { cancel(nil) })()
	defer context.AfterFunc(ctx, func() { st.CancelRead(0) })()
	// one timer per stream, moved for each wait and call (a context or a
	// read deadline per call would allocate a timer per call)
	ans := newCallAnswer(s, st)
	ctx = context.WithValue(ctx, answerKey{}, ans)
	expire := time.AfterFunc(cmp.Or(s.ReadTimeout, 10*time.Second), func() { cancel(errTimedOut) })
	defer expire.Stop()
	callTimeout := s.callTimeout()
	for first := true; ; first = false {
		if !first {
			expire.Reset(cmp.Or(s.IdleTimeout, 30*time.Second))
		}
		var req Request
		err := ReadFrame(st, &req)
		expire.Reset(callTimeout)
		start := time.Now()
		if err != nil {
			st.CancelRead(0)
			if !first && errors.Is(err, errNoFrame) {
				_ = st.Close() // idle: the caller closed, went quiet or the server stops
				return
			}
			s.logger().Debug("rpc: bad request frame", "err", err)
			s.endWith(st, "", start, nil, asAPIError(err, api.CodeInvalidArgument))
			return
		}
		if !s.serveCall(ctx, st, &req, callers, ans, start) {
			return
		}
		if ctx.Err() != nil {
			_ = st.Close() // the call was answered; the stream ends with its context
			return
		}
	}
}

// callTimeout is CallTimeout or its default.
func (s *Server) callTimeout() time.Duration { return cmp.Or(s.CallTimeout, 60*time.Second) }

// errTimedOut ends a stream whose wait for a request or whose call outlasted
// its timeout (Server.ReadTimeout, IdleTimeout, CallTimeout).
var errTimedOut = fmt.Errorf("rpc: timed out: %w", context.DeadlineExceeded)

// serveCall answers one request read from st and reports whether st may
// carry another call. A unary handler may answer early through ans (see
// EarlyAnswer); its return is then dropped.
func (s *Server) serveCall(ctx context.Context, st *quic.Stream, req *Request, callers authenticator, ans *callAnswer, start time.Time) bool {
	fromNode := callers.node(req.Auth)
	if !fromNode && !callers.client(req.Auth) {
		return s.reply(st, req.Op, start, nil, api.Errorf(api.CodeUnauthorized, "missing or invalid cluster credential: use a ticket of this cluster"))
	}
	e, err := s.Registry.lookup(req.Op, fromNode)
	if err != nil {
		return s.reply(st, req.Op, start, nil, err)
	}
	reqv := e.newReq()
	if len(req.Body) > 0 {
		if err := Unmarshal(req.Body, reqv); err != nil {
			return s.reply(st, req.Op, start, nil, api.Errorf(api.CodeInvalidArgument, "decoding %s request: %v", req.Op, err))
		}
	}
	if e.stream != nil {
		st.CancelRead(0) // nothing more is read from the caller
		s.serveStreaming(ctx, st, req, e, reqv, start)
		return false
	}
	ans.begin(req.Op, start)
	resp, err := e.call(ctx, reqv)
	if err == errDetached {
		return ans.detach()
	}
	if !ans.claim() {
		return ans.finish()
	}
	if err != nil && errors.Is(context.Cause(ctx), errTimedOut) {
		err = api.Errorf(api.CodeUnavailable, "%s: cut at the server's call timeout (%s, %v): %v",
			req.Op, s.callTimeout(), context.DeadlineExceeded, err)
	}
	if err != nil && errors.Is(err, api.ErrNotLeader) && !req.Forwarded && s.Forward != nil {
		req.Forwarded = true
		fwd, ferr := s.Forward(ctx, req)
		if ferr == nil {
			s.observe(req.Op, codeOfResponse(fwd), start)
			return s.write(st, req.Op, fwd)
		}
		s.logger().Debug("rpc: forwarding to leader failed", "op", req.Op, "err", ferr)
		err = forwardFailure(req.Op, err, ferr)
	}
	return s.reply(st, req.Op, start, resp, err)
}

// forwardFailure is the answer when forwarding to the leader failed. If the
// request may have reached the leader, its outcome is unknown: answering
// NOT_LEADER would invite the client to send a write that may already be
// applied a second time. Otherwise the original NOT_LEADER (with its leader
// hint) tells the client to rotate.
func forwardFailure(op string, notLeader, ferr error) error {
	if errors.Is(ferr, ErrOutcomeUnknown) {
		return api.Errorf(api.CodeUnavailable, "%s was forwarded to the leader but its answer was lost; the outcome is unknown", op)
	}
	return notLeader
}

func (s *Server) serveStreaming(ctx context.Context, st *quic.Stream, req *Request, e *entry, reqv any, start time.Time) {
	hw := &headerWriter{w: st}
	err := e.stream(ctx, reqv, hw)
	if err != nil {
		if !hw.sent {
			s.endWith(st, req.Op, start, nil, err)
			return
		}
		// the header already said success: abort so the caller sees a broken stream
		s.logger().Warn("rpc: streaming call failed midway", "op", req.Op, "err", err)
		st.CancelWrite(1)
		s.observe(req.Op, api.CodeOf(err), start)
		return
	}
	if !hw.sent {
		_ = WriteFrame(st, &Response{})
	}
	_ = st.Close()
	s.observe(req.Op, "", start)
}

// headerWriter writes the success envelope before the first byte of a stream.
type headerWriter struct {
	w    io.Writer
	sent bool
}

func (h *headerWriter) Write(p []byte) (int, error) {
	if !h.sent {
		h.sent = true
		if err := WriteFrame(h.w, &Response{}); err != nil {
			return 0, err
		}
	}
	return h.w.Write(p)
}

// endWith answers the call on st and ends the stream.
func (s *Server) endWith(st *quic.Stream, op string, start time.Time, resp any, err error) {
	if s.reply(st, op, start, resp, err) {
		_ = st.Close()
	}
}

// reply answers the call on st with resp or err and reports whether the
// answer was written (else st is reset, as write does).
func (s *Server) reply(st *quic.Stream, op string, start time.Time, resp any, err error) bool {
	buf := takeBuffer()
	defer ReleaseBuffer(buf)
	if !s.frameAnswer(buf, st, op, start, resp, err) {
		return false
	}
	if _, err := st.Write(buf.Bytes()); err != nil {
		s.failWrite(st, op, err)
		return false
	}
	return true
}

// frameAnswer appends to buf the frame answering a call of op with resp or
// err and records the call's outcome. An answer that cannot be encoded
// resets st and yields false.
func (s *Server) frameAnswer(buf *bytes.Buffer, st *quic.Stream, op string, start time.Time, resp any, err error) bool {
	out := &Response{}
	if err != nil {
		out.Error = asAPIError(err, api.CodeInternal)
		switch {
		case out.Error.Code != api.CodeInternal:
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			// the call timed out or its caller went away: not a server fault
			out.Error = api.Errorf(api.CodeUnavailable, "%s: %v", op, err)
		default:
			s.logger().Error("rpc: internal error", "op", op, "err", err)
		}
	} else if resp != nil {
		body, merr := MarshalBuffer(resp)
		if merr != nil {
			out.Error = api.Errorf(api.CodeInternal, "encoding %s response: %v", op, merr)
		} else {
			defer ReleaseBuffer(body)
			out.Body = body.Bytes()
		}
	}
	if ferr := appendFrame(buf, out); ferr != nil {
		s.logger().Debug("rpc: encoding response", "op", op, "err", ferr)
		st.CancelWrite(1)
		return false
	}
	s.observe(op, codeOfResponse(out), start)
	return true
}

// write sends an answer and reports whether it was written; on failure it
// resets st, so the caller cannot take the end of the stream for a request
// that was never read.
func (s *Server) write(st *quic.Stream, op string, out *Response) bool {
	if err := WriteFrame(st, out); err != nil {
		s.failWrite(st, op, err)
		return false
	}
	return true
}

// failWrite ends an answer whose write failed: st is reset.
func (s *Server) failWrite(st *quic.Stream, op string, err error) {
	s.logger().Debug("rpc: writing response", "op", op, "err", err)
	st.CancelWrite(1)
}

func (s *Server) observe(op string, code api.Code, start time.Time) {
	if s.Observe != nil {
		s.Observe(op, code, time.Since(start))
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func codeOfResponse(r *Response) api.Code {
	if r == nil || r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// asAPIError returns err's *api.Error, or wraps err's text in one with code.
func asAPIError(err error, code api.Code) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	return &api.Error{Code: code, Message: err.Error()}
}

// Invoke runs a unary operation for a surface other than QUIC (the HTTP
// gateway) the way ServeConn does: the request is decoded with decode, a
// NOT_LEADER failure is forwarded once through Forward, and the call is
// observed. The caller has already authenticated the request.
func (s *Server) Invoke(ctx context.Context, op string, decode func(any) error) (any, error) {
	start := time.Now()
	resp, err := s.invoke(ctx, op, decode)
	s.observe(op, api.CodeOf(err), start)
	return resp, err
}

func (s *Server) invoke(ctx context.Context, op string, decode func(any) error) (any, error) {
	e, req, err := s.Registry.decodeUnary(op, decode)
	if err != nil {
		return nil, err
	}
	resp, err := e.call(ctx, req)
	if err == nil || !errors.Is(err, api.ErrNotLeader) || s.Forward == nil {
		return resp, err
	}
	body, merr := Marshal(req)
	if merr != nil {
		return nil, fmt.Errorf("encoding %s request to forward: %w", op, merr)
	}
	fwd, ferr := s.Forward(ctx, &Request{Op: op, Forwarded: true, Body: body})
	if ferr != nil {
		s.logger().Debug("rpc: forwarding to leader failed", "op", op, "err", ferr)
		return nil, forwardFailure(op, err, ferr)
	}
	if fwd.Error != nil {
		return nil, fwd.Error
	}
	out := e.newResp()
	if len(fwd.Body) > 0 {
		if err := Unmarshal(fwd.Body, out); err != nil {
			return nil, fmt.Errorf("decoding forwarded %s response: %w", op, err)
		}
	}
	return out, nil
}
