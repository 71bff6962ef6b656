package rpc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

const testALPN = "aspen/rpc-test/1"

// waitLimit bounds every blocking step; tests synchronize on channels and
// only fail, never sleep, when it passes.
const waitLimit = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func newCredential(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newEndpoint(t testing.TB) *transport.Endpoint {
	t.Helper()
	id, err := transport.GenerateIdentity()
	if err != nil {
		t.Fatalf("GenerateIdentity: %v", err)
	}
	e, err := transport.Listen(transport.Config{Identity: id}, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("closing endpoint: %v", err)
		}
	})
	return e
}

// serve starts srv on a loopback QUIC endpoint and returns its address.
func serve(t testing.TB, srv *rpc.Server) transport.NodeAddr {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.DiscardHandler)
	}
	e := newEndpoint(t)
	e.Handle(testALPN, func(ctx context.Context, c *transport.Conn) { srv.ServeConn(ctx, c) })
	e.Serve()
	return e.NodeAddr()
}

// dial connects to addr from a new endpoint, so every call of dial gets its
// own connection (and TLS exporter).
func dial(t testing.TB, addr transport.NodeAddr) *transport.Conn {
	t.Helper()
	c, err := newEndpoint(t).Dial(testCtx(t), addr, testALPN)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

func proofFor(t testing.TB, c *transport.Conn, cred []byte) []byte {
	t.Helper()
	exp, err := c.Exporter()
	if err != nil {
		t.Fatalf("Exporter: %v", err)
	}
	return auth.Proof(cred, exp)
}

// request builds an authenticated request whose body is the CBOR of body
// (none when body is nil).
func request(t testing.TB, c *transport.Conn, cred []byte, op string, body any) *rpc.Request {
	t.Helper()
	req := &rpc.Request{Op: op, Auth: proofFor(t, c, cred)}
	if body != nil {
		req.Body = mustMarshal(t, body)
	}
	return req
}

func mustCall(t testing.TB, c *transport.Conn, req *rpc.Request) *rpc.Response {
	t.Helper()
	resp, err := rpc.Call(testCtx(t), c, req)
	if err != nil {
		t.Fatalf("Call %s: %v", req.Op, err)
	}
	return resp
}

func decodeEcho(t testing.TB, resp *rpc.Response) string {
	t.Helper()
	if resp.Error != nil {
		t.Fatalf("response error %v, want success", resp.Error)
	}
	var out echoResp
	if err := rpc.Unmarshal(resp.Body, &out); err != nil {
		t.Fatalf("decoding response body: %v", err)
	}
	return out.Text
}

func wantError(t testing.TB, resp *rpc.Response, code api.Code, text string) {
	t.Helper()
	if resp.Error == nil {
		t.Fatalf("response %+v, want error %s", resp, code)
	}
	if resp.Error.Code != code || !strings.Contains(resp.Error.Message, text) {
		t.Fatalf("error = %v, want code %s with %q in the message", resp.Error, code, text)
	}
}

// recv waits for a value on ch or fails after waitLimit.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestServerUnary(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "echo", echo)
	rpc.Handle(reg, "api_error", func(context.Context, *echoReq) (*echoResp, error) {
		return nil, fmt.Errorf("wrapped: %w", &api.Error{Code: api.CodeNotFound, Message: "no such key \"k\""})
	})
	rpc.Handle(reg, "plain_error", func(context.Context, *echoReq) (*echoResp, error) {
		return nil, errors.New("disk on fire")
	})
	rpc.Handle(reg, "ctx_error", func(context.Context, *echoReq) (*echoResp, error) {
		return nil, fmt.Errorf("waiting for apply: %w", context.DeadlineExceeded)
	})
	rpc.Handle(reg, "nil_response", func(context.Context, *echoReq) (*echoResp, error) { return nil, nil })
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)

	tests := []struct {
		name     string
		op       string
		body     any
		rawBody  []byte // used instead of body when set
		want     string
		wantCode api.Code
		wantText string
	}{
		{name: "round trip", op: "echo", body: &echoReq{Text: "hello"}, want: "hello"},
		{name: "no body", op: "echo", want: ""},
		{name: "api error keeps code and message", op: "api_error", wantCode: api.CodeNotFound, wantText: `no such key "k"`},
		{name: "plain error is internal", op: "plain_error", wantCode: api.CodeInternal, wantText: "disk on fire"},
		{name: "context error is unavailable", op: "ctx_error", wantCode: api.CodeUnavailable, wantText: "deadline exceeded"},
		{name: "unknown op names it", op: "kv.nope", wantCode: api.CodeUnimplemented, wantText: `"kv.nope"`},
		{name: "body of the wrong type", op: "echo", rawBody: mustMarshal(t, 42), wantCode: api.CodeInvalidArgument, wantText: "echo"},
		{name: "field of the wrong type", op: "echo", rawBody: mustMarshal(t, map[string]any{"text": 5}), wantCode: api.CodeInvalidArgument, wantText: "echo"},
		{name: "unknown fields are ignored", op: "echo", rawBody: mustMarshal(t, map[string]any{"text": "t", "extra": 1}), want: "t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, c, cred, tt.op, tt.body)
			if tt.rawBody != nil {
				req.Body = tt.rawBody
			}
			resp := mustCall(t, c, req)
			if tt.wantCode != "" {
				wantError(t, resp, tt.wantCode, tt.wantText)
				return
			}
			if got := decodeEcho(t, resp); got != tt.want {
				t.Fatalf("echo = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("nil response is an empty success, not a CBOR null", func(t *testing.T) {
		resp := mustCall(t, c, request(t, c, cred, "nil_response", nil))
		if resp.Error != nil || len(resp.Body) != 0 {
			t.Fatalf("resp = %+v, want empty success", resp)
		}
	})
}

func TestServerAuth(t *testing.T) {
	cred := newCredential(t)
	var calls atomic.Int32
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "echo", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		calls.Add(1)
		return echo(ctx, r)
	})
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})

	other := dial(t, addr)
	tests := []struct {
		name  string
		proof func(c *transport.Conn) []byte
	}{
		{"missing", func(*transport.Conn) []byte { return nil }},
		{"random", func(*transport.Conn) []byte { return newCredential(t) }},
		{"truncated", func(c *transport.Conn) []byte { return proofFor(t, c, cred)[:16] }},
		{"wrong credential", func(c *transport.Conn) []byte { return proofFor(t, c, newCredential(t)) }},
		{"raw credential", func(*transport.Conn) []byte { return cred }},
		{"replayed from another connection", func(*transport.Conn) []byte { return proofFor(t, other, cred) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			before := calls.Load()
			resp := mustCall(t, c, &rpc.Request{Op: "echo", Auth: tt.proof(c), Body: mustMarshal(t, &echoReq{Text: "x"})})
			wantError(t, resp, api.CodeUnauthorized, "credential")
			if n := calls.Load() - before; n != 0 {
				t.Fatalf("handler called %d times for an unauthenticated request", n)
			}
			// the connection is not poisoned: a good proof still works
			if got := decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: "ok"}))); got != "ok" {
				t.Fatalf("echo after a failed proof = %q", got)
			}
		})
	}

	t.Run("every request needs a proof", func(t *testing.T) {
		c := dial(t, addr)
		decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: "first"})))
		before := calls.Load()
		resp := mustCall(t, c, &rpc.Request{Op: "echo"})
		wantError(t, resp, api.CodeUnauthorized, "credential")
		if n := calls.Load() - before; n != 0 {
			t.Fatalf("handler called %d times for a request without proof", n)
		}
	})

	t.Run("unknown op is not revealed before auth", func(t *testing.T) {
		c := dial(t, addr)
		wantError(t, mustCall(t, c, &rpc.Request{Op: "nope"}), api.CodeUnauthorized, "credential")
	})
}

// TestServerNodeOnly: a node-only operation answers a caller proving the
// node secret and refuses one proving the client credential, before its
// handler runs; other operations serve both.
func TestServerNodeOnly(t *testing.T) {
	client, node := newCredential(t), newCredential(t)
	var calls atomic.Int32
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "echo", echo)
	rpc.Handle(reg, "internal", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		calls.Add(1)
		return echo(ctx, r)
	})
	reg.NodeOnly("internal")
	addr := serve(t, &rpc.Server{Registry: reg, Credential: client, NodeCredential: node})
	c := dial(t, addr)

	wantError(t, mustCall(t, c, request(t, c, client, "internal", &echoReq{Text: "x"})), api.CodeUnauthorized, "reserved to the cluster's nodes")
	if n := calls.Load(); n != 0 {
		t.Fatalf("node-only handler ran %d times for a client", n)
	}
	if got := decodeEcho(t, mustCall(t, c, request(t, c, node, "internal", &echoReq{Text: "n"}))); got != "n" {
		t.Errorf("node-only call by a node = %q", got)
	}
	for _, cred := range [][]byte{client, node} {
		if got := decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: "e"}))); got != "e" {
			t.Errorf("echo = %q", got)
		}
	}
	// the HTTP-style entry point is a client's
	if _, err := (&rpc.Server{Registry: reg}).Invoke(testCtx(t), "internal", func(any) error { return nil }); api.CodeOf(err) != api.CodeUnauthorized {
		t.Errorf("Invoke of a node-only op = %v; want UNAUTHORIZED", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("NodeOnly of an unregistered operation did not panic")
		}
	}()
	reg.NodeOnly("missing")
}

func TestServerWithoutCredentialRefusesAll(t *testing.T) {
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "echo", echo)
	addr := serve(t, &rpc.Server{Registry: reg})
	c := dial(t, addr)
	for _, cred := range [][]byte{nil, {}} {
		wantError(t, mustCall(t, c, request(t, c, cred, "echo", nil)), api.CodeUnauthorized, "credential")
	}
}

// rawStream opens a stream on c and writes b to it without closing it.
func rawStream(t testing.TB, c *transport.Conn, b []byte) *quic.Stream {
	t.Helper()
	st, err := c.OpenStream(testCtx(t))
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	t.Cleanup(func() { st.CancelRead(0); st.CancelWrite(0) })
	_ = st.SetDeadline(time.Now().Add(waitLimit))
	if _, err := st.Write(b); err != nil {
		t.Fatalf("writing raw bytes: %v", err)
	}
	return st
}

func TestServerBadFrames(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "echo", echo)
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)

	tests := []struct {
		name     string
		in       []byte
		wantCode api.Code
	}{
		{"garbage cbor", frame(4, []byte{0xff, 0xff, 0xff, 0xff}), api.CodeInvalidArgument},
		{"not a frame at all", []byte("GET / HTTP/1.1\r\n\r\n"), api.CodeResourceExhausted}, // "GET " is a 1.2 GB length
		{"truncated header", []byte{0}, api.CodeInvalidArgument},
		{"truncated body", frame(100, []byte{0xa1}), api.CodeInvalidArgument},
		{"oversized length", frame(0xFFFFFFFF, nil), api.CodeResourceExhausted},
		{"empty frame", frame(0, nil), api.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := rawStream(t, c, tt.in)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			var resp rpc.Response
			if err := rpc.ReadFrame(st, &resp); err != nil {
				t.Fatalf("reading the answer to a bad frame: %v", err)
			}
			wantError(t, &resp, tt.wantCode, "")
			// the connection keeps serving
			if got := decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: "still here"}))); got != "still here" {
				t.Fatalf("echo after a bad frame = %q", got)
			}
		})
	}
}

func TestServerReadTimeout(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "echo", echo)
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred, ReadTimeout: 200 * time.Millisecond})
	c := dial(t, addr)

	// a client that starts a request and goes silent
	stalled := rawStream(t, c, []byte{0, 0})
	answered := make(chan error, 1)
	go func() {
		var resp rpc.Response
		err := rpc.ReadFrame(stalled, &resp)
		if err == nil && resp.Error == nil {
			err = fmt.Errorf("stalled stream got a success: %+v", resp)
		}
		answered <- err
	}()

	// meanwhile other calls on the same connection are served
	for i := range 5 {
		text := fmt.Sprint("call ", i)
		if got := decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: text}))); got != text {
			t.Fatalf("echo = %q, want %q", got, text)
		}
	}

	if err := recv(t, answered, "the stalled stream to be answered"); err != nil {
		t.Fatal(err)
	}
	if _, err := stalled.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the answer: %v, want EOF", err)
	}
	// the server stopped reading the stream, so the client's writes fail
	// instead of filling a stream the server still holds open
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := stalled.Write([]byte{0})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server never stopped reading the timed-out stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fwdFixture serves an operation that answers NOT_LEADER with a leader hint,
// with a Forward that records what it gets.
type fwdFixture struct {
	cred     []byte
	c        *transport.Conn
	handled  atomic.Int32
	mu       sync.Mutex
	forwards []rpc.Request
	fwdErr   error
}

func newFwdFixture(t *testing.T) *fwdFixture {
	f := &fwdFixture{cred: newCredential(t)}
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "write", func(context.Context, *echoReq) (*echoResp, error) {
		f.handled.Add(1)
		return nil, fmt.Errorf("proposing: %w", &api.Error{Code: api.CodeNotLeader, Message: "not the leader", Leader: "LEADER-HINT"})
	})
	rpc.Handle(reg, "conflict", func(context.Context, *echoReq) (*echoResp, error) {
		return nil, api.Errorf(api.CodeConflict, "exists")
	})
	srv := &rpc.Server{Registry: reg, Credential: f.cred,
		Forward: func(_ context.Context, req *rpc.Request) (*rpc.Response, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.forwards = append(f.forwards, *req)
			if f.fwdErr != nil {
				return nil, f.fwdErr
			}
			var in echoReq
			if err := rpc.Unmarshal(req.Body, &in); err != nil {
				return nil, err
			}
			b, err := rpc.Marshal(&echoResp{Text: "leader saw " + in.Text})
			return &rpc.Response{Body: b}, err
		},
	}
	f.c = dial(t, serve(t, srv))
	return f
}

func (f *fwdFixture) forwarded() []rpc.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rpc.Request(nil), f.forwards...)
}

func TestServerForwarding(t *testing.T) {
	t.Run("not leader is forwarded once", func(t *testing.T) {
		f := newFwdFixture(t)
		resp := mustCall(t, f.c, request(t, f.c, f.cred, "write", &echoReq{Text: "w1"}))
		if got := decodeEcho(t, resp); got != "leader saw w1" {
			t.Fatalf("answer = %q, want the forwarded response", got)
		}
		fw := f.forwarded()
		if len(fw) != 1 {
			t.Fatalf("Forward called %d times, want 1", len(fw))
		}
		if fw[0].Op != "write" || !fw[0].Forwarded {
			t.Fatalf("forwarded request = %+v, want op write with Forwarded set", fw[0])
		}
	})
	t.Run("forwarded request is not forwarded again", func(t *testing.T) {
		f := newFwdFixture(t)
		req := request(t, f.c, f.cred, "write", &echoReq{Text: "w2"})
		req.Forwarded = true
		resp := mustCall(t, f.c, req)
		wantError(t, resp, api.CodeNotLeader, "not the leader")
		if resp.Error.Leader != "LEADER-HINT" {
			t.Fatalf("leader hint = %q, want it preserved", resp.Error.Leader)
		}
		if n := len(f.forwarded()); n != 0 {
			t.Fatalf("Forward called %d times for an already forwarded request", n)
		}
		if n := f.handled.Load(); n != 1 {
			t.Fatalf("handler called %d times, want 1", n)
		}
	})
	t.Run("failed forward returns the hint", func(t *testing.T) {
		f := newFwdFixture(t)
		f.mu.Lock()
		f.fwdErr = errors.New("leader unreachable")
		f.mu.Unlock()
		resp := mustCall(t, f.c, request(t, f.c, f.cred, "write", &echoReq{Text: "w3"}))
		wantError(t, resp, api.CodeNotLeader, "not the leader")
		if resp.Error.Leader != "LEADER-HINT" {
			t.Fatalf("leader hint = %q, want it preserved", resp.Error.Leader)
		}
		if n := len(f.forwarded()); n != 1 {
			t.Fatalf("Forward called %d times, want 1", n)
		}
	})
	t.Run("other errors are not forwarded", func(t *testing.T) {
		f := newFwdFixture(t)
		wantError(t, mustCall(t, f.c, request(t, f.c, f.cred, "conflict", nil)), api.CodeConflict, "exists")
		if n := len(f.forwarded()); n != 0 {
			t.Fatalf("Forward called %d times for CONFLICT", n)
		}
	})
}

func TestServerStreaming(t *testing.T) {
	cred := newCredential(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, more than one flow-control window
	reg := rpc.NewRegistry()
	rpc.HandleStream(reg, "dump", func(_ context.Context, _ *echoReq, w io.Writer) error {
		_, err := w.Write(payload)
		return err
	})
	rpc.HandleStream(reg, "nothing", func(context.Context, *echoReq, io.Writer) error { return nil })
	rpc.HandleStream(reg, "fail_early", func(context.Context, *echoReq, io.Writer) error {
		return api.Errorf(api.CodeUnavailable, "no snapshot yet")
	})
	rpc.HandleStream(reg, "fail_midway", func(_ context.Context, _ *echoReq, w io.Writer) error {
		if _, err := w.Write([]byte("partial")); err != nil {
			return err
		}
		return errors.New("disk read failed")
	})
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)

	callStream := func(t *testing.T, op string) (*rpc.Response, []byte, error) {
		t.Helper()
		resp, rc, err := rpc.CallStream(testCtx(t), c, request(t, c, cred, op, nil))
		if err != nil {
			return nil, nil, err
		}
		if resp.Error != nil {
			if rc != nil {
				t.Fatal("error response came with a body reader")
			}
			return resp, nil, nil
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return resp, b, err
	}

	t.Run("bytes follow the header", func(t *testing.T) {
		_, b, err := callStream(t, "dump")
		if err != nil {
			t.Fatal(err)
		}
		if err != nil || !bytes.Equal(b, payload) {
			t.Fatalf("read %d bytes, %v; want %d bytes", len(b), err, len(payload))
		}
	})
	t.Run("no bytes", func(t *testing.T) {
		_, b, err := callStream(t, "nothing")
		if err != nil {
			t.Fatal(err)
		}
		if err != nil || len(b) != 0 {
			t.Fatalf("read %q, %v; want nothing", b, err)
		}
	})
	t.Run("error before writing is an envelope", func(t *testing.T) {
		resp, _, err := callStream(t, "fail_early")
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, resp, api.CodeUnavailable, "no snapshot yet")
	})
	t.Run("error midway breaks the stream", func(t *testing.T) {
		// the reset may overtake the header, so the error shows either
		// in CallStream or in reading the bytes; never a clean EOF
		_, b, err := callStream(t, "fail_midway")
		if err == nil {
			t.Fatalf("read %q with no error; want a broken stream", b)
		}
	})
	t.Run("unary call on a streaming op via Call", func(t *testing.T) {
		resp := mustCall(t, c, request(t, c, cred, "nothing", nil))
		if resp.Error != nil {
			t.Fatalf("resp error %v", resp.Error)
		}
	})
}

type observation struct {
	op   string
	code api.Code
}

func TestServerObserve(t *testing.T) {
	cred := newCredential(t)
	obs := make(chan observation, 16)
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "echo", echo)
	rpc.Handle(reg, "conflict", func(context.Context, *echoReq) (*echoResp, error) {
		return nil, api.Errorf(api.CodeConflict, "exists")
	})
	rpc.HandleStream(reg, "stream", func(_ context.Context, _ *echoReq, w io.Writer) error {
		_, err := w.Write([]byte("x"))
		return err
	})
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred,
		Observe: func(op string, code api.Code, elapsed time.Duration) {
			if elapsed < 0 {
				t.Errorf("negative elapsed %v", elapsed)
			}
			obs <- observation{op, code}
		},
	})
	c := dial(t, addr)

	tests := []struct {
		name string
		req  func() *rpc.Request
		want observation
	}{
		{"success", func() *rpc.Request { return request(t, c, cred, "echo", nil) }, observation{"echo", ""}},
		{"handler error", func() *rpc.Request { return request(t, c, cred, "conflict", nil) }, observation{"conflict", api.CodeConflict}},
		{"unknown op", func() *rpc.Request { return request(t, c, cred, "nope", nil) }, observation{"nope", api.CodeUnimplemented}},
		{"unauthorized", func() *rpc.Request { return &rpc.Request{Op: "echo"} }, observation{"echo", api.CodeUnauthorized}},
		{"streaming", func() *rpc.Request { return request(t, c, cred, "stream", nil) }, observation{"stream", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustCall(t, c, tt.req())
			if got := recv(t, obs, "an observation"); got != tt.want {
				t.Fatalf("observed %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestServerClientCancel(t *testing.T) {
	cred := newCredential(t)
	started := make(chan struct{}, 1)
	handlerDone := make(chan error, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "slow", func(ctx context.Context, _ *echoReq) (*echoResp, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			handlerDone <- ctx.Err()
		case <-release:
			handlerDone <- errors.New("released by cleanup, never cancelled")
		}
		return nil, ctx.Err()
	})
	rpc.Handle(reg, "echo", echo)
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)

	ctx, cancel := context.WithCancel(testCtx(t))
	callErr := make(chan error, 1)
	go func() {
		_, err := rpc.Call(ctx, c, request(t, c, cred, "slow", nil))
		callErr <- err
	}()
	recv(t, started, "the handler to start")
	cancel()
	if err := recv(t, callErr, "Call to return after cancel"); err == nil {
		t.Fatal("Call returned no error after its context was cancelled")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Call error %v does not wrap context.Canceled", err)
	}
	if err := recv(t, handlerDone, "the handler's context to end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ended with %v, want its context cancelled when the caller gave up", err)
	}
	// the connection still serves
	decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", nil)))
}

func TestServerCallTimeout(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "slow", func(ctx context.Context, _ *echoReq) (*echoResp, error) {
		<-ctx.Done()
		return nil, api.Errorf(api.CodeUnavailable, "gave up: %v", ctx.Err())
	})
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred, CallTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	wantError(t, mustCall(t, c, request(t, c, cred, "slow", nil)), api.CodeUnavailable, "deadline exceeded")
}

func BenchmarkCallLoopback(b *testing.B) {
	cred := newCredential(b)
	reg := rpc.NewRegistry()
	rpc.Handle(reg, api.OpKVPut, func(context.Context, *api.PutRequest) (*api.PutResponse, error) {
		return &api.PutResponse{Revision: 1}, nil
	})
	c := dial(b, serve(b, &rpc.Server{Registry: reg, Credential: cred}))
	req := request(b, c, cred, api.OpKVPut, &api.PutRequest{Key: []byte("bench/key"), Value: bytes.Repeat([]byte{'v'}, 100)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rpc.Call(ctx, c, req)
		if err != nil || resp.Error != nil {
			b.Fatalf("Call: %v %v", err, resp)
		}
	}
}
