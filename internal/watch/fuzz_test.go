package watch_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// FuzzWatchFrames feeds arbitrary bytes to the decoders of both directions
// of the aspen/watch/1 protocol (a WatchRequest from a client, a WatchFrame
// from a server): they must not panic, and whatever decodes must encode
// and decode again to the same frame.
func FuzzWatchFrames(f *testing.F) {
	for _, m := range []any{
		&api.WatchRequest{Auth: bytes.Repeat([]byte{7}, 32), Prefix: []byte("app/"), FromRevision: 42, PrevValue: true},
		&api.WatchRequest{},
		&api.WatchFrame{Revision: 9},
		&api.WatchFrame{Events: []api.WatchEvent{{Type: api.WatchPut, Key: []byte("k"), Value: []byte("v"), Revision: 3}}, Partial: true},
		&api.WatchFrame{Error: &api.WatchError{Code: api.WatchCodeCompacted, Message: "gone", OldestRevision: 5}},
	} {
		var buf bytes.Buffer
		if err := rpc.WriteFrame(&buf, m); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF))
	f.Add([]byte{0, 0, 0, 5, 0xa1})

	f.Fuzz(func(t *testing.T, in []byte) {
		var req api.WatchRequest
		if rpc.ReadFrame(bytes.NewReader(in), &req) == nil {
			roundTrip(t, &req, &api.WatchRequest{})
		}
		var fr api.WatchFrame
		if rpc.ReadFrame(bytes.NewReader(in), &fr) == nil {
			roundTrip(t, &fr, &api.WatchFrame{})
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
