package rpc_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// frame returns a length prefix announcing n bytes followed by body.
func frame(n uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, n)
	return append(b, body...)
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := rpc.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", v, err)
	}
	return b
}

func TestWriteReadFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		req  rpc.Request
	}{
		{"op only", rpc.Request{Op: "kv.get"}},
		{"all fields", rpc.Request{
			Op: "kv.put", Auth: bytes.Repeat([]byte{1}, 32), Token: "tok", Forwarded: true,
			Body: mustMarshal(t, &api.PutRequest{Key: []byte("k"), Value: []byte("v"), TTLMs: 5}),
		}},
		{"binary body", rpc.Request{Op: "x", Body: mustMarshal(t, &api.PutRequest{Value: bytes.Repeat([]byte{0, 0xff}, 4096)})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := rpc.WriteFrame(&buf, &tt.req); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			if got, want := binary.BigEndian.Uint32(buf.Bytes()), uint32(buf.Len()-4); got != want {
				t.Fatalf("length prefix = %d, want %d", got, want)
			}
			var got rpc.Request
			if err := rpc.ReadFrame(&buf, &got); err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if got.Op != tt.req.Op || !bytes.Equal(got.Auth, tt.req.Auth) || got.Token != tt.req.Token ||
				got.Forwarded != tt.req.Forwarded || !bytes.Equal(got.Body, tt.req.Body) {
				t.Fatalf("got %+v, want %+v", got, tt.req)
			}
			if buf.Len() != 0 {
				t.Fatalf("%d bytes left unread after the frame", buf.Len())
			}
		})
	}
}

func TestResponseRoundTripKeepsError(t *testing.T) {
	in := &rpc.Response{Error: &api.Error{Code: api.CodeNotLeader, Message: "m", Leader: "L"}}
	var buf bytes.Buffer
	if err := rpc.WriteFrame(&buf, in); err != nil {
		t.Fatal(err)
	}
	var out rpc.Response
	if err := rpc.ReadFrame(&buf, &out); err != nil {
		t.Fatal(err)
	}
	if out.Error == nil || *out.Error != *in.Error || out.Body != nil {
		t.Fatalf("got %+v, want %+v", out, in)
	}
}

func TestReadFrameErrors(t *testing.T) {
	valid := mustMarshal(t, &rpc.Request{Op: "kv.get"})
	tests := []struct {
		name     string
		in       []byte
		wantIs   error    // checked with errors.Is when set
		wantCode api.Code // checked with api.CodeOf when set
	}{
		{"empty input", nil, io.ErrUnexpectedEOF, ""},
		{"truncated header", []byte{0, 0}, io.ErrUnexpectedEOF, ""},
		{"length over limit", frame(rpc.MaxFrameSize+1, nil), rpc.ErrFrameTooLarge, api.CodeResourceExhausted},
		{"max uint32 length", frame(0xFFFFFFFF, []byte("x")), rpc.ErrFrameTooLarge, api.CodeResourceExhausted},
		{"body missing", frame(uint32(len(valid)), nil), io.ErrUnexpectedEOF, ""},
		{"truncated body", frame(uint32(len(valid)), valid[:len(valid)-1]), io.ErrUnexpectedEOF, ""},
		{"huge length truncated body", frame(rpc.MaxFrameSize, []byte("abc")), io.ErrUnexpectedEOF, ""},
		{"garbage cbor", frame(3, []byte{0xff, 0xfe, 0xfd}), api.ErrInvalidArgument, api.CodeInvalidArgument},
		{"not a map", frame(1, []byte{0x01}), api.ErrInvalidArgument, api.CodeInvalidArgument},
		{"empty body", frame(0, nil), api.ErrInvalidArgument, api.CodeInvalidArgument},
		{"trailing bytes in body", frame(uint32(len(valid)+1), append(append([]byte{}, valid...), 0)), api.ErrInvalidArgument, api.CodeInvalidArgument},
		{"duplicate map key", frame(9, []byte{0xa2, 0x62, 'o', 'p', 0x60, 0x62, 'o', 'p', 0x60}), api.ErrInvalidArgument, api.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req rpc.Request
			err := rpc.ReadFrame(bytes.NewReader(tt.in), &req)
			if err == nil {
				t.Fatalf("ReadFrame(%x) = nil error, want one", tt.in)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantCode != "" && api.CodeOf(err) != tt.wantCode {
				t.Errorf("code = %s, want %s (err %v)", api.CodeOf(err), tt.wantCode, err)
			}
		})
	}
}

// TestReadFrameDoesNotTrustLength checks that a length prefix alone does not
// make ReadFrame allocate the announced size: a peer must send the bytes.
func TestReadFrameDoesNotTrustLength(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"max uint32 length", frame(0xFFFFFFFF, nil)},
		{"limit-sized length, 3 bytes sent", frame(rpc.MaxFrameSize, []byte("abc"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocated := bytesAllocated(func() {
				var req rpc.Request
				if err := rpc.ReadFrame(bytes.NewReader(tt.in), &req); err == nil {
					t.Error("ReadFrame succeeded")
				}
			})
			if allocated > 1<<20 {
				t.Fatalf("ReadFrame allocated %d bytes for a %d-byte input", allocated, len(tt.in))
			}
		})
	}
}

func bytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestWriteFrameErrors(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		var buf bytes.Buffer
		err := rpc.WriteFrame(&buf, &rpc.Request{Op: "x", Body: mustMarshal(t, make([]byte, rpc.MaxFrameSize))})
		if !errors.Is(err, rpc.ErrFrameTooLarge) {
			t.Fatalf("err = %v, want ErrFrameTooLarge", err)
		}
		if buf.Len() != 0 {
			t.Fatalf("wrote %d bytes of an oversized frame", buf.Len())
		}
	})
	t.Run("unencodable", func(t *testing.T) {
		if err := rpc.WriteFrame(io.Discard, make(chan int)); err == nil {
			t.Fatal("WriteFrame(chan) = nil error")
		}
	})
	t.Run("writer fails", func(t *testing.T) {
		boom := errors.New("boom")
		if err := rpc.WriteFrame(failWriter{boom}, &rpc.Request{Op: "x"}); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want it to wrap the writer's error", err)
		}
	})
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func BenchmarkFrameRoundTrip(b *testing.B) {
	body := mustMarshal(b, &api.PutRequest{Key: []byte("bench/key/0001"), Value: bytes.Repeat([]byte{'v'}, 100)})
	req := &rpc.Request{Op: api.OpKVPut, Auth: bytes.Repeat([]byte{7}, 32), Body: body}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := rpc.WriteFrame(&buf, req); err != nil {
			b.Fatal(err)
		}
		var got rpc.Request
		if err := rpc.ReadFrame(&buf, &got); err != nil {
			b.Fatal(err)
		}
		var put api.PutRequest
		if err := rpc.Unmarshal(got.Body, &put); err != nil {
			b.Fatal(err)
		}
	}
}
