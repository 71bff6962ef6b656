package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const raftALPN = "aspen/raft/1"

// raftNode is an endpoint serving a StreamLayer.
type raftNode struct {
	e *Endpoint
	l *StreamLayer
}

func newRaftNode(t *testing.T, secret []byte, allow func(PublicKey) bool) raftNode {
	t.Helper()
	e, err := Listen(Config{Identity: newIdentity(t)}, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	l := NewStreamLayer(e, raftALPN, secret, allow, nil)
	e.Serve()
	t.Cleanup(func() {
		_ = l.Close()
		if err := e.Close(); err != nil {
			t.Errorf("endpoint Close: %v", err)
		}
	})
	return raftNode{e: e, l: l}
}

// acceptAsync runs Accept until the layer closes, delivering conns on the
// returned channel.
func acceptAsync(t *testing.T, l *StreamLayer) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept error = %v, want net.ErrClosed", err)
				}
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		// Drain a conn the test did not take so the goroutine can see Close.
		for {
			select {
			case <-done:
				return
			case c := <-ch:
				_ = c.Close()
			}
		}
	})
	return ch
}

func receive(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(testTimeout):
		t.Fatal("Accept returned nothing")
		return nil
	}
}

func exchange(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	_ = to.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(to, buf); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("read %q, want %q", buf, msg)
	}
}

// expectRejected checks that the dialer's stream is reset or ends: Read
// fails without data.
func expectRejected(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	n, err := c.Read(make([]byte, 1))
	if err == nil || n != 0 {
		t.Fatalf("Read on rejected stream = %d, %v; want 0 and an error", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("Read on rejected stream timed out instead of being reset: %v", err)
	}
}

func TestStreamLayerRoundTrip(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	a := newRaftNode(t, secret, nil)
	b := newRaftNode(t, secret, nil)
	accepted := acceptAsync(t, b.l)

	if got, want := b.l.Addr().String(), b.e.NodeAddr().String(); got != want {
		t.Errorf("Addr() = %q, want %q", got, want)
	}
	target := raft.ServerAddress(b.l.Addr().String())
	out, err := a.l.Dial(target, testTimeout)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = out.Close() })
	in := receive(t, accepted)
	if got, want := in.(*streamConn).c.Peer(), a.e.Identity().Public(); got != want {
		t.Errorf("accepted stream from %s, want %s", got, want)
	}
	exchange(t, out, in, "append entries")
	exchange(t, in, out, "response")

	// A second stream reuses the QUIC connection.
	out2, err := a.l.Dial(target, testTimeout)
	if err != nil {
		t.Fatalf("Dial 2: %v", err)
	}
	t.Cleanup(func() { _ = out2.Close() })
	if out2.(*streamConn).c != out.(*streamConn).c {
		t.Error("second Dial opened a new QUIC connection")
	}
	in2 := receive(t, accepted)
	exchange(t, out2, in2, "second stream")

	// Close sends EOF after the data already written.
	if _, err := out2.Write([]byte("bye")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := out2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_ = in2.SetReadDeadline(time.Now().Add(testTimeout))
	rest, err := io.ReadAll(in2)
	if err != nil || string(rest) != "bye" {
		t.Errorf("after Close read %q, %v; want \"bye\", EOF", rest, err)
	}
}

func TestStreamLayerRejects(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	wrongSecret := bytes.Repeat([]byte{2}, 32)

	tests := []struct {
		name         string
		dialerSecret []byte
		deny         bool // the acceptor's allow rejects the dialer
	}{
		{"wrong node secret", wrongSecret, false},
		{"not a member", secret, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := newRaftNode(t, tt.dialerSecret, nil)
			badKey := bad.e.Identity().Public()
			allow := func(pk PublicKey) bool { return !(tt.deny && pk == badKey) }
			b := newRaftNode(t, secret, allow)
			good := newRaftNode(t, secret, nil)
			accepted := acceptAsync(t, b.l)
			target := raft.ServerAddress(b.l.Addr().String())

			out, err := bad.l.Dial(target, testTimeout)
			if err == nil {
				t.Cleanup(func() { _ = out.Close() })
				expectRejected(t, out)
			}

			// The next stream Accept returns is the good node's: the
			// rejected one was never handed out.
			okOut, err := good.l.Dial(target, testTimeout)
			if err != nil {
				t.Fatalf("good Dial: %v", err)
			}
			t.Cleanup(func() { _ = okOut.Close() })
			in := receive(t, accepted)
			if got, want := in.(*streamConn).c.Peer(), good.e.Identity().Public(); got != want {
				t.Fatalf("Accept returned a stream from %s, want the good node %s", got, want)
			}
			exchange(t, okOut, in, "ok")
		})
	}
}

func TestStreamLayerClose(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	a := newRaftNode(t, secret, nil)
	b := newRaftNode(t, secret, nil)

	errc := make(chan error, 1)
	go func() {
		_, err := b.l.Accept()
		errc <- err
	}()
	if err := b.l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Accept did not return after Close")
	}
	if _, err := b.l.Dial(raft.ServerAddress(a.l.Addr().String()), testTimeout); err == nil {
		t.Error("Dial on a closed layer succeeded")
	}
	if _, err := a.l.Dial("not-a-node-address", testTimeout); err == nil {
		t.Error("Dial of a malformed address succeeded")
	}
}

// TestStreamLayerRaftTransport runs a real raft RPC over the layer.
func TestStreamLayerRaftTransport(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	a := newRaftNode(t, secret, nil)
	b := newRaftNode(t, secret, nil)
	ta := raft.NewNetworkTransport(a.l, 2, testTimeout, io.Discard)
	tb := raft.NewNetworkTransport(b.l, 2, testTimeout, io.Discard)
	t.Cleanup(func() {
		_ = ta.Close()
		_ = tb.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	go func() {
		select {
		case rpc := <-tb.Consumer():
			req, ok := rpc.Command.(*raft.AppendEntriesRequest)
			if !ok {
				rpc.Respond(nil, errors.New("unexpected command"))
				return
			}
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: true}, nil)
		case <-ctx.Done():
		}
	}()

	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("a"), Addr: []byte(ta.LocalAddr())},
		Term:      7,
		Entries:   []*raft.Log{{Index: 1, Term: 7, Data: []byte("x")}},
	}
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("b", tb.LocalAddr(), req, &resp); err != nil {
		t.Fatalf("AppendEntries: %v", err)
	}
	if !resp.Success || resp.Term != 7 {
		t.Errorf("response = %+v, want success at term 7", resp)
	}
}

// BenchmarkRaftAppendEntries measures one AppendEntries round trip (one
// 256-byte entry) through hashicorp/raft's network transport over the QUIC
// stream layer, the follower answering at once: the transport's share of a
// replicated write's latency.
func BenchmarkRaftAppendEntries(b *testing.B) {
	secret := bytes.Repeat([]byte{1}, 32)
	mk := func() (*Endpoint, *StreamLayer) {
		id, err := GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		e, err := Listen(Config{Identity: id}, nil)
		if err != nil {
			b.Fatal(err)
		}
		l := NewStreamLayer(e, raftALPN, secret, nil, nil)
		e.Serve()
		b.Cleanup(func() {
			_ = l.Close()
			_ = e.Close()
		})
		return e, l
	}
	_, la := mk()
	_, lb := mk()
	ta := raft.NewNetworkTransport(la, 2, testTimeout, io.Discard)
	tb := raft.NewNetworkTransport(lb, 2, testTimeout, io.Discard)
	b.Cleanup(func() {
		_ = ta.Close()
		_ = tb.Close()
	})
	go func() {
		for rpc := range tb.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
		}
	}()
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("a"), Addr: []byte(ta.LocalAddr())},
		Term:      7,
		Entries:   []*raft.Log{{Index: 1, Term: 7, Data: bytes.Repeat([]byte{'x'}, 256)}},
	}
	var resp raft.AppendEntriesResponse
	for b.Loop() {
		if err := ta.AppendEntries("b", tb.LocalAddr(), req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}
