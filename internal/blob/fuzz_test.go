package blob_test

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/blob"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// FuzzTransferFrames feeds arbitrary bytes to the decoders of the
// aspen/blobs/1 request and response frames: they must not panic, and
// whatever decodes must encode and decode again to the same frame.
func FuzzTransferFrames(f *testing.F) {
	for _, m := range []any{
		&blob.TransferRequest{Op: blob.OpGet, Auth: bytes.Repeat([]byte{1}, 32), Hash: bytes.Repeat([]byte{2}, 32), Offset: 1024, Length: 4096, NoFetch: true},
		&blob.TransferRequest{Op: blob.OpPut, Auth: []byte{3}, Tags: []string{"a", "b"}},
		&blob.TransferRequest{Op: "nope"},
		&blob.TransferRequest{Op: blob.OpGet, Auth: []byte{5}, Hash: bytes.Repeat([]byte{6}, 32), ReadCap: true, ExpiresMs: 1e12},
		&blob.TransferResponse{Hash: bytes.Repeat([]byte{4}, 32), Size: 9, New: true},
		&blob.TransferResponse{Error: &api.Error{Code: api.CodeNotFound, Message: "no blob"}},
	} {
		var buf bytes.Buffer
		if err := rpc.WriteFrame(&buf, m); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(binary.BigEndian.AppendUint32(nil, 0x7FFFFFFF))
	f.Add([]byte{0, 0, 0, 9, 0xa2, 0x62, 'o', 'p'})

	f.Fuzz(func(t *testing.T, in []byte) {
		var req blob.TransferRequest
		if rpc.ReadFrame(bytes.NewReader(in), &req) == nil {
			roundTrip(t, &req, &blob.TransferRequest{})
		}
		var resp blob.TransferResponse
		if rpc.ReadFrame(bytes.NewReader(in), &resp) == nil {
			roundTrip(t, &resp, &blob.TransferResponse{})
		}
	})
}

// roundTrip encodes v, decodes it into fresh, and checks both encode to the
// same bytes.
func roundTrip(t *testing.T, v, fresh any) {
	t.Helper()
	var a bytes.Buffer
	if err := rpc.WriteFrame(&a, v); err != nil {
		t.Fatalf("decoded %+v does not encode: %v", v, err)
	}
	enc := bytes.Clone(a.Bytes())
	if err := rpc.ReadFrame(&a, fresh); err != nil {
		t.Fatalf("re-encoded %+v does not decode: %v", v, err)
	}
	var b bytes.Buffer
	if err := rpc.WriteFrame(&b, fresh); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, b.Bytes()) {
		t.Fatalf("round trip changed %+v into %+v", v, fresh)
	}
}

// FuzzParseTicket feeds arbitrary text to the blob ticket parser: it must
// not panic, and a ticket it accepts must print and parse to itself.
func FuzzParseTicket(f *testing.F) {
	h := blob.Sum([]byte("x"))
	peer, err := transport.ParseNodeAddr(strings.Repeat("cd", 32) + "@127.0.0.1:4701")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob.Ticket{Hash: h, ClusterID: "c", Peers: []transport.NodeAddr{peer}, ExpiresMs: 5, Token: blob.ReadCapability([]byte("k"), h, 5)}.String())
	f.Add(blob.TicketPrefix)
	f.Add(blob.TicketPrefix + "aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := blob.ParseTicket(s)
		if err != nil {
			return
		}
		again, err := blob.ParseTicket(tk.String())
		if err != nil || !reflect.DeepEqual(again, tk) {
			t.Fatalf("ticket %+v printed and parsed to %+v, %v", tk, again, err)
		}
	})
}
