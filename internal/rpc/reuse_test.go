package rpc_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// countingConn counts the streams Call opens on a pooled connection.
type countingConn struct {
	*transport.Conn
	opened atomic.Int64
}

func (c *countingConn) OpenStream(ctx context.Context) (*quic.Stream, error) {
	c.opened.Add(1)
	return c.Conn.OpenStream(ctx)
}

func counterRegistry(calls *atomic.Int64) *rpc.Registry {
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "add", func(context.Context, *echoReq) (*echoResp, error) {
		calls.Add(1)
		return &echoResp{Text: "ok"}, nil
	})
	rpc.Handle(reg, "fail", func(context.Context, *echoReq) (*echoResp, error) {
		calls.Add(1)
		return nil, api.Errorf(api.CodeConflict, "refused")
	})
	return reg
}

// TestCallReusesStreams: sequential calls, successful or refused, share one
// stream; concurrent calls open one stream each at most.
func TestCallReusesStreams(t *testing.T) {
	cred := newCredential(t)
	var calls atomic.Int64
	addr := serve(t, &rpc.Server{Registry: counterRegistry(&calls), Credential: cred})
	c := &countingConn{Conn: dial(t, addr)}
	for i := range 20 {
		op := "add"
		if i%3 == 0 {
			op = "fail"
		}
		resp, err := rpc.Call(testCtx(t), c, request(t, c.Conn, cred, op, &echoReq{Text: "x"}))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if (resp.Error != nil) != (op == "fail") {
			t.Fatalf("call %d (%s): response %+v", i, op, resp)
		}
	}
	if got := c.opened.Load(); got != 1 {
		t.Fatalf("20 sequential calls opened %d streams, want 1", got)
	}

	done := make(chan error)
	for range 8 {
		go func() {
			_, err := rpc.Call(testCtx(t), c, request(t, c.Conn, cred, "add", &echoReq{Text: "x"}))
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := c.opened.Load(); got > 8 {
		t.Fatalf("8 concurrent calls after one stream was idle opened %d streams in all, want at most 8", got)
	}
	if got := calls.Load(); got != 28 {
		t.Fatalf("handlers ran %d times, want 28", got)
	}
}

// TestCallAfterServerEndedIdleStream: a stream the server ended while idle
// is not an error for the next call, which runs exactly once on a new
// stream.
func TestCallAfterServerEndedIdleStream(t *testing.T) {
	cred := newCredential(t)
	var calls atomic.Int64
	addr := serve(t, &rpc.Server{Registry: counterRegistry(&calls), Credential: cred, IdleTimeout: 50 * time.Millisecond})
	c := &countingConn{Conn: dial(t, addr)}
	call := func() {
		t.Helper()
		resp, err := rpc.Call(testCtx(t), c, request(t, c.Conn, cred, "add", &echoReq{Text: "x"}))
		if err != nil || resp.Error != nil {
			t.Fatalf("call: %v %+v", err, resp)
		}
	}
	call()
	// wait until the server has ended the idle stream (it stops reading,
	// which ends the stream's context here), then hand it back to the pool
	st := c.TakeStream()
	if st == nil {
		t.Fatal("no idle stream after a call")
	}
	select {
	case <-st.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("the server never ended the idle stream")
	}
	c.ReleaseStream(st)
	call()
	if got := calls.Load(); got != 2 {
		t.Fatalf("handler ran %d times, want 2", got)
	}
	if got := c.opened.Load(); got != 2 {
		t.Fatalf("opened %d streams, want 2 (the first ended by the server)", got)
	}
}

// TestCancelledCallDoesNotPoisonThePool: a call abandoned mid-flight resets
// its stream; later calls still succeed.
func TestCancelledCallDoesNotPoisonThePool(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	release := make(chan struct{})
	rpc.Handle(reg, "slow", func(ctx context.Context, _ *echoReq) (*echoResp, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &echoResp{Text: "late"}, nil
	})
	rpc.Handle(reg, "echo", func(_ context.Context, r *echoReq) (*echoResp, error) {
		return &echoResp{Text: r.Text}, nil
	})
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := rpc.Call(ctx, c, request(t, c, cred, "slow", &echoReq{}))
		errc <- err
	}()
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled call succeeded")
	}
	close(release)
	for i := range 5 {
		if got := decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: "hi"}))); got != "hi" {
			t.Fatalf("call %d after a cancelled one: %q", i, got)
		}
	}
}

// TestCallByDeadline: a call past its deadline (no context deadline) fails
// with context.DeadlineExceeded, and its stream is not reused.
func TestCallByDeadline(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	rpc.Handle(reg, "slow", func(ctx context.Context, _ *echoReq) (*echoResp, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	rpc.Handle(reg, "echo", func(_ context.Context, r *echoReq) (*echoResp, error) {
		return &echoResp{Text: r.Text}, nil
	})
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)
	for i := range 3 {
		_, err := rpc.CallBy(context.Background(), c, request(t, c, cred, "slow", &echoReq{}), time.Now().Add(50*time.Millisecond))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d past its deadline: %v, want context.DeadlineExceeded", i, err)
		}
		resp, err := rpc.CallBy(context.Background(), c, request(t, c, cred, "echo", &echoReq{Text: "hi"}), time.Now().Add(10*time.Second))
		if err != nil {
			t.Fatalf("call after a timed-out one: %v", err)
		}
		if got := decodeEcho(t, resp); got != "hi" {
			t.Fatalf("echo = %q", got)
		}
	}
}
