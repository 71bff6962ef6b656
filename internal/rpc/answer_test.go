package rpc_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// An early answer, sent from another goroutine while the handler still
// runs, is the call's answer; the handler's own return is dropped, and the
// stream carries the next call.
func TestEarlyAnswer(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	answers := make(chan rpc.Answer, 1)
	release := make(chan struct{})
	rpc.Handle(reg, "early", func(ctx context.Context, req *echoReq) (*echoResp, error) {
		a, ok := rpc.EarlyAnswer(ctx)
		if !ok {
			return nil, api.Errorf(api.CodeInternal, "no early answer on a QUIC stream")
		}
		answers <- a
		select { // the answer is on its way before the handler returns
		case <-release:
		case <-ctx.Done(): // a failed test ended the connection
		}
		return &echoResp{Text: "from the handler"}, nil
	})
	rpc.Handle(reg, "echo", echo)
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)

	type result struct {
		resp *rpc.Response
		err  error
	}
	call := func(op string, text string) <-chan result {
		out := make(chan result, 1)
		go func() {
			resp, err := rpc.Call(testCtx(t), c, request(t, c, cred, op, &echoReq{Text: text}))
			out <- result{resp, err}
		}()
		return out
	}

	t.Run("answer before the handler returns", func(t *testing.T) {
		done := call("early", "x")
		a := recv(t, answers, "the handler's Answer")
		if !a.Send(&echoResp{Text: "early"}, nil) {
			t.Fatal("Send = false for an unanswered call")
		}
		if a.Send(&echoResp{Text: "again"}, nil) {
			t.Fatal("a second Send answered the call again")
		}
		r := recv(t, done, "the early answer")
		if r.err != nil {
			t.Fatalf("Call: %v", r.err)
		}
		if got := decodeEcho(t, r.resp); got != "early" {
			t.Fatalf("answer = %q, want the early one", got)
		}
		release <- struct{}{}
		// the handler's return was dropped: the next call on the kept
		// stream reads its own answer, not the handler's leftover
		if got := decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: "next"}))); got != "next" {
			t.Fatalf("next call = %q, want next", got)
		}
	})

	t.Run("an error answers early too", func(t *testing.T) {
		done := call("early", "x")
		a := recv(t, answers, "the handler's Answer")
		a.Send(nil, api.Errorf(api.CodeConflict, "compare failed"))
		r := recv(t, done, "the early answer")
		if r.err != nil {
			t.Fatalf("Call: %v", r.err)
		}
		wantError(t, r.resp, api.CodeConflict, "compare failed")
		release <- struct{}{}
	})

	t.Run("an answer larger than a packet is finished by the handler", func(t *testing.T) {
		done := call("early", "x")
		a := recv(t, answers, "the handler's Answer")
		big := strings.Repeat("b", 64<<10)
		if !a.Send(&echoResp{Text: big}, nil) {
			t.Fatal("Send = false for an unanswered call")
		}
		release <- struct{}{}
		r := recv(t, done, "the answer")
		if r.err != nil {
			t.Fatalf("Call: %v", r.err)
		}
		if got := decodeEcho(t, r.resp); got != big {
			t.Fatalf("answer of %d bytes, want the early one of %d", len(got), len(big))
		}
	})

	t.Run("the handler's return answers when no early answer came", func(t *testing.T) {
		done := call("early", "x")
		a := recv(t, answers, "the handler's Answer")
		release <- struct{}{}
		r := recv(t, done, "the answer")
		if r.err != nil {
			t.Fatalf("Call: %v", r.err)
		}
		if got := decodeEcho(t, r.resp); got != "from the handler" {
			t.Fatalf("answer = %q, want the handler's", got)
		}
		// a late Send, as from a state machine that applied the write after
		// the handler gave up, answers nothing: not this call, not the next
		if a.Send(&echoResp{Text: "late"}, nil) {
			t.Fatal("a late Send answered")
		}
		next := call("early", "y")
		b := recv(t, answers, "the next call's Answer")
		if a.Send(&echoResp{Text: "stale"}, nil) {
			t.Fatal("the Answer of an earlier call answered the next one")
		}
		b.Send(&echoResp{Text: "own"}, nil)
		if r := recv(t, next, "the next answer"); r.err != nil || decodeEcho(t, r.resp) != "own" {
			t.Fatalf("next call = %+v, %v; want its own early answer", r.resp, r.err)
		}
		release <- struct{}{}
	})
}

func TestEarlyAnswerOutsideAStream(t *testing.T) {
	if _, ok := rpc.EarlyAnswer(context.Background()); ok {
		t.Fatal("EarlyAnswer ok for a call not served on a stream")
	}
	if (rpc.Answer{}).Send(&echoResp{}, nil) {
		t.Fatal("the zero Answer answered")
	}
}

// Early answers to a caller that does not read them fill the stream's
// flow-control window: Send then leaves the rest of an answer to the
// handler's goroutine instead of waiting, and every answer still arrives
// whole and in order once the caller reads.
func TestEarlyAnswersToACallerThatDoesNotRead(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	pad := strings.Repeat("p", 1000) // an answer just under a packet, so Send writes it itself
	rpc.Handle(reg, "early_now", func(ctx context.Context, req *echoReq) (*echoResp, error) {
		a, ok := rpc.EarlyAnswer(ctx)
		if !ok {
			return nil, api.Errorf(api.CodeInternal, "no early answer")
		}
		a.Send(&echoResp{Text: req.Text + pad}, nil)
		return &echoResp{Text: "dropped"}, nil
	})
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)

	// 1200 answers of ~1 KB are more than the stream's 512 KiB window
	const calls = 1200
	var reqs bytes.Buffer
	for i := range calls {
		if err := rpc.WriteFrame(&reqs, request(t, c, cred, "early_now", &echoReq{Text: fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
	}
	st := rawStream(t, c, reqs.Bytes())
	for i := range calls {
		var resp rpc.Response
		if err := rpc.ReadFrame(st, &resp); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if got, want := decodeEcho(t, &resp), fmt.Sprint(i)+pad; got != want {
			t.Fatalf("answer %d = %.20q..., want %.20q...", i, got, want)
		}
	}
}

// A handler that detaches returns before its answer; the answer sent later
// from another goroutine, small or larger than a packet, is the call's, and
// the stream, read again as soon as the handler returned, carries the next
// call. An answer sent before the handler detaches is the call's too.
func TestDetachedAnswer(t *testing.T) {
	cred := newCredential(t)
	reg := rpc.NewRegistry()
	answers := make(chan rpc.Answer, 1)
	returned := make(chan struct{}, 1)
	sendFirst := make(chan string, 1)
	rpc.Handle(reg, "detach", func(ctx context.Context, req *echoReq) (*echoResp, error) {
		a, ok := rpc.EarlyAnswer(ctx)
		if !ok {
			return nil, api.Errorf(api.CodeInternal, "no early answer on a QUIC stream")
		}
		select {
		case text := <-sendFirst:
			a.Send(&echoResp{Text: text}, nil)
		default:
			answers <- a
		}
		returned <- struct{}{}
		return nil, a.Detach()
	})
	rpc.Handle(reg, "echo", echo)
	addr := serve(t, &rpc.Server{Registry: reg, Credential: cred})
	c := dial(t, addr)

	for _, text := range []string{"small", strings.Repeat("b", 64<<10)} {
		done := make(chan *rpc.Response, 1)
		go func() {
			resp, err := rpc.Call(testCtx(t), c, request(t, c, cred, "detach", &echoReq{}))
			if err != nil {
				t.Errorf("Call: %v", err)
			}
			done <- resp
		}()
		a := recv(t, answers, "the handler's Answer")
		recv(t, returned, "the handler's return")
		if !a.Send(&echoResp{Text: text}, nil) {
			t.Fatal("Send = false for a detached, unanswered call")
		}
		if got := decodeEcho(t, recv(t, done, "the detached answer")); got != text {
			t.Fatalf("answer of %d bytes, want the detached one of %d", len(got), len(text))
		}
		if got := decodeEcho(t, mustCall(t, c, request(t, c, cred, "echo", &echoReq{Text: "next"}))); got != "next" {
			t.Fatalf("next call = %q, want next", got)
		}
	}

	sendFirst <- "before the return"
	resp := mustCall(t, c, request(t, c, cred, "detach", &echoReq{}))
	recv(t, returned, "the handler's return")
	if got := decodeEcho(t, resp); got != "before the return" {
		t.Fatalf("answer = %q, want the one sent before the handler detached", got)
	}
}
