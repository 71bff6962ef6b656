package chaos_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/blob"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/node"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// The protocols a node accepts connections on.
var alpns = []string{client.ALPN, node.ALPNRaft, api.ALPNWatch, blob.ALPN}

// badInput is a live 1-node cluster plus a raw endpoint that speaks to it
// below the client library.
type badInput struct {
	c     *clustertest.Cluster
	cl    *client.Client
	ep    *transport.Endpoint
	cred  []byte // this cluster's client credential
	other []byte // another cluster's client credential
}

func newBadInput(t *testing.T) *badInput {
	t.Helper()
	b := &badInput{c: clustertest.New(t, 1, clustertest.Options{})}
	b.cl = b.c.Client()
	b.cred = credential(t, b.c.Ticket())
	b.other = credential(t, clustertest.New(t, 1, clustertest.Options{}).Ticket())
	id, err := transport.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b.ep, err = transport.Listen(transport.Config{Identity: id, Bind: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.cl.Put(ctx, &api.PutRequest{Key: []byte("existing"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	return b
}

func credential(t *testing.T, tk string) []byte {
	t.Helper()
	parsed, err := ticket.Parse(tk)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Credential
}

// stream opens a raw stream on alpn and returns it with cred's proof for
// its connection; on the raft protocol a nil stream when the node refused
// the connection before the stream opened (this endpoint is no member).
// refusedRaft reports whether err is the node refusing a raft connection of
// a non-member: the refusal can win the race with opening a stream or
// writing to it. Nothing reached the node.
func refusedRaft(alpn string, err error) bool {
	return alpn == node.ALPNRaft && strings.Contains(err.Error(), "not a cluster member")
}

func (b *badInput) stream(t *testing.T, alpn string, cred []byte) (*quic.Stream, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := b.ep.Dial(ctx, b.c.Members[0].Node.Addr(), alpn)
	if err != nil {
		t.Fatalf("dial %s: %v", alpn, err)
	}
	st, err := conn.OpenStream(ctx)
	if err != nil {
		if refusedRaft(alpn, err) {
			return nil, nil
		}
		t.Fatalf("open %s stream: %v", alpn, err)
	}
	exp, err := conn.Exporter()
	if err != nil {
		t.Fatal(err)
	}
	return st, auth.Proof(cred, exp)
}

// state is what a bad input must not change: the applied index and every
// key with its value and version.
func (b *badInput) state(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := b.cl.Scan(ctx, &api.ScanRequest{Limit: 1000})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "applied %d;", b.c.Members[0].Node.Store().AppliedIndex())
	for _, kv := range resp.Entries {
		fmt.Fprintf(&s, " %q=%q@%d", kv.Key, kv.Value, kv.ModRevision)
	}
	return s.String()
}

// serves checks the node still answers a normal put and get.
func (b *badInput) serves(t *testing.T, probe string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.cl.Put(ctx, &api.PutRequest{Key: []byte(probe), Value: []byte("ok")}); err != nil {
		t.Fatalf("put after bad input: %v", err)
	}
	got, err := b.cl.Get(ctx, &api.GetRequest{Key: []byte(probe)})
	if err != nil || got.KV == nil || string(got.KV.Value) != "ok" {
		t.Fatalf("get after bad input: %+v, %v", got, err)
	}
}

// send writes raw bytes, ends the write side and returns what the node
// answered before it ended the stream; the node must end it within 15s.
func send(t *testing.T, st *quic.Stream, raw []byte) []byte {
	t.Helper()
	if st == nil { // refused before the stream opened (see stream)
		return nil
	}
	_ = st.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := st.Write(raw); err != nil {
		t.Logf("write: %v (the node stopped reading early)", err)
	}
	_ = st.Close()
	out, err := io.ReadAll(st)
	var se *quic.StreamError
	if err != nil && !errors.As(err, &se) {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the node did not end the stream within 15s")
		}
	}
	return out
}

func frame(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := rpc.WriteFrame(&buf, v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// answerCode decodes the node's answer on alpn and returns its error code
// ("" for none, "-" for no answer at all).
func answerCode(t *testing.T, alpn string, out []byte) string {
	t.Helper()
	if len(out) == 0 {
		return "-"
	}
	r := bytes.NewReader(out)
	switch alpn {
	case client.ALPN:
		var resp rpc.Response
		if err := rpc.ReadFrame(r, &resp); err != nil {
			t.Fatalf("undecodable answer %x: %v", out, err)
		}
		if resp.Error != nil {
			return string(resp.Error.Code)
		}
	case api.ALPNWatch:
		var f api.WatchFrame
		if err := rpc.ReadFrame(r, &f); err != nil {
			t.Fatalf("undecodable answer %x: %v", out, err)
		}
		if f.Error != nil {
			return f.Error.Code
		}
	case blob.ALPN:
		var resp blob.TransferResponse
		if err := rpc.ReadFrame(r, &resp); err != nil {
			t.Fatalf("undecodable answer %x: %v", out, err)
		}
		if resp.Error != nil {
			return string(resp.Error.Code)
		}
	default:
		t.Fatalf("unexpected answer on %s: %x", alpn, out)
	}
	return ""
}

func lengthPrefix(n uint32, rest ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), rest...)
}

// TestBadInput sends malformed, oversize, unauthenticated and stalled
// input on every protocol of a live node: each must get an error answer
// (or, on the raft protocol, a closed stream) and change nothing, and the
// node must keep serving.
func TestBadInput(t *testing.T) {
	b := newBadInput(t)
	garbage := []byte("\x00\x00\x00\x10\xff\xfe\xfd garbage \x9f\x9f\x9f\x9f\x9f\x9f")
	for _, alpn := range alpns {
		// request builds a well-formed request of this protocol with auth.
		request := func(t *testing.T, proof []byte) any {
			switch alpn {
			case client.ALPN:
				return &rpc.Request{Op: "kv.get", Auth: proof, Body: mustCBOR(t, &api.GetRequest{Key: []byte("existing")})}
			case api.ALPNWatch:
				return &api.WatchRequest{Auth: proof, FromRevision: 1}
			case blob.ALPN:
				return &blob.TransferRequest{Op: blob.OpGet, Auth: proof, Hash: make([]byte, 32)}
			}
			return &rpc.Request{Op: "raft", Auth: proof}
		}
		cases := []struct {
			name string
			raw  func(t *testing.T, proof []byte) []byte
			want string // error code expected; "" accepts any error or a closed stream
		}{
			{"garbage", func(*testing.T, []byte) []byte { return garbage }, ""},
			{"huge length prefix", func(*testing.T, []byte) []byte { return lengthPrefix(0xFFFFFFFF, 1, 2, 3) }, ""},
			{"negative length prefix", func(*testing.T, []byte) []byte { return lengthPrefix(0x80000000, 1) }, ""},
			{"zero length", func(*testing.T, []byte) []byte { return lengthPrefix(0) }, ""},
			{"truncated prefix", func(*testing.T, []byte) []byte { return []byte{0, 0} }, ""},
			{"truncated frame", func(t *testing.T, proof []byte) []byte {
				f := frame(t, request(t, proof))
				return f[:len(f)-3]
			}, ""},
			{"no credential", func(t *testing.T, _ []byte) []byte { return frame(t, request(t, nil)) }, ""},
		}
		for _, tc := range cases {
			t.Run(alpn+"/"+tc.name, func(t *testing.T) {
				before := b.state(t)
				st, proof := b.stream(t, alpn, b.cred)
				out := send(t, st, tc.raw(t, proof))
				if alpn != node.ALPNRaft {
					if code := answerCode(t, alpn, out); code == "" {
						t.Errorf("answer has no error")
					}
				}
				if after := b.state(t); after != before {
					t.Errorf("state changed:\n%s\n%s", before, after)
				}
				b.serves(t, "probe")
			})
		}
	}

	// Well-formed requests the node must refuse with a specific code.
	refusals := []struct {
		name, alpn string
		req        func(t *testing.T, proof []byte) any
		cred       func() []byte
		want       string
	}{
		{"unknown op", client.ALPN, func(t *testing.T, p []byte) any { return &rpc.Request{Op: "kv.nope", Auth: p} }, nil, string(api.CodeUnimplemented)},
		{"undecodable body", client.ALPN, func(t *testing.T, p []byte) any {
			return &rpc.Request{Op: "kv.put", Auth: p, Body: []byte{0x61, 'x'}} // a string, not a request map
		}, nil, string(api.CodeInvalidArgument)},
		{"oversize key", client.ALPN, func(t *testing.T, p []byte) any {
			return &rpc.Request{Op: "kv.put", Auth: p, Body: mustCBOR(t, &api.PutRequest{Key: make([]byte, api.MaxKeySize+1), Value: []byte("v")})}
		}, nil, string(api.CodeInvalidArgument)},
		{"oversize value", client.ALPN, func(t *testing.T, p []byte) any {
			return &rpc.Request{Op: "kv.put", Auth: p, Body: mustCBOR(t, &api.PutRequest{Key: []byte("big"), Value: make([]byte, api.MaxValueSize+1)})}
		}, nil, ""},
		{"wrong cluster", client.ALPN, func(t *testing.T, p []byte) any {
			return &rpc.Request{Op: "kv.put", Auth: p, Body: mustCBOR(t, &api.PutRequest{Key: []byte("existing"), Value: []byte("x")})}
		}, func() []byte { return b.other }, string(api.CodeUnauthorized)},
		{"unknown blob op", blob.ALPN, func(t *testing.T, p []byte) any { return &blob.TransferRequest{Op: "nope", Auth: p} }, nil, string(api.CodeUnimplemented)},
		{"wrong cluster", blob.ALPN, func(t *testing.T, p []byte) any {
			return &blob.TransferRequest{Op: blob.OpGet, Auth: p, Hash: make([]byte, 32)}
		}, func() []byte { return b.other }, string(api.CodeUnauthorized)},
		{"oversize prefix", api.ALPNWatch, func(t *testing.T, p []byte) any {
			return &api.WatchRequest{Auth: p, Prefix: make([]byte, api.MaxKeySize+1)}
		}, nil, api.WatchCodeInvalidArgument},
		{"wrong cluster", api.ALPNWatch, func(t *testing.T, p []byte) any { return &api.WatchRequest{Auth: p} },
			func() []byte { return b.other }, api.WatchCodeUnauthorized},
	}
	for _, tc := range refusals {
		t.Run(tc.alpn+"/"+tc.name, func(t *testing.T) {
			before := b.state(t)
			cred := b.cred
			if tc.cred != nil {
				cred = tc.cred()
			}
			st, proof := b.stream(t, tc.alpn, cred)
			code := answerCode(t, tc.alpn, send(t, st, frame(t, tc.req(t, proof))))
			if code == "" || code == "-" || (tc.want != "" && code != tc.want) {
				t.Errorf("answer code %q, want %q", code, tc.want)
			}
			if after := b.state(t); after != before {
				t.Errorf("state changed:\n%s\n%s", before, after)
			}
			b.serves(t, "probe")
		})
	}

	t.Run("wrong cluster ticket", func(t *testing.T) {
		before := b.state(t)
		tk, err := ticket.Parse(b.c.Ticket())
		if err != nil {
			t.Fatal(err)
		}
		tk.Credential = b.other
		cl, err := client.New(client.Config{Ticket: tk.String(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = cl.Put(ctx, &api.PutRequest{Key: []byte("existing"), Value: []byte("stolen")})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeUnauthorized {
			t.Errorf("put with another cluster's ticket: %v, want UNAUTHORIZED", err)
		}
		if after := b.state(t); after != before {
			t.Errorf("state changed:\n%s\n%s", before, after)
		}
	})

	t.Run("silent streams", func(t *testing.T) {
		// Streams that send nothing, and streams that send two bytes of a
		// length prefix and stall, on every protocol: the node keeps
		// serving meanwhile and ends the stalled ones by its read timeout.
		before := b.state(t)
		type stalledStream struct {
			st   *quic.Stream
			alpn string
		}
		var stalled []stalledStream
		for _, alpn := range alpns {
			for range 8 {
				b.stream(t, alpn, b.cred) // never written: the node never sees it
				st, _ := b.stream(t, alpn, b.cred)
				if st == nil {
					continue // refused before the stream opened
				}
				if _, err := st.Write([]byte{0, 0}); err != nil {
					if refusedRaft(alpn, err) {
						continue
					}
					t.Fatalf("%s: %v", alpn, err)
				}
				stalled = append(stalled, stalledStream{st, alpn})
			}
		}
		if after := b.state(t); after != before {
			t.Errorf("state changed:\n%s\n%s", before, after)
		}
		b.serves(t, "probe-silent")
		for i, s := range stalled {
			_ = s.st.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := io.ReadAll(s.st)
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("stalled stream %d on %s still open after 20s", i, s.alpn)
			}
		}
	})
}

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := rpc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
