package rpc_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// FuzzReadFrame feeds arbitrary bytes to ReadFrame: it must not panic, must
// not allocate much beyond what it was given, and whatever it decodes must
// encode again to the same envelope.
func FuzzReadFrame(f *testing.F) {
	for _, req := range []*rpc.Request{
		{Op: "kv.get"},
		{Op: "kv.put", Auth: bytes.Repeat([]byte{9}, 32), Token: "t", Forwarded: true,
			Body: mustMarshal(f, &api.PutRequest{Key: []byte("k"), Value: []byte("v")})},
	} {
		var buf bytes.Buffer
		if err := rpc.WriteFrame(&buf, req); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(frame(0xFFFFFFFF, nil))
	f.Add(frame(rpc.MaxFrameSize, []byte{0xa1}))
	f.Add(frame(0, nil))
	f.Add([]byte{0, 0, 0})

	f.Fuzz(func(t *testing.T, in []byte) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc

		var req rpc.Request
		reqErr := rpc.ReadFrame(bytes.NewReader(in), &req)
		var resp rpc.Response
		respErr := rpc.ReadFrame(bytes.NewReader(in), &resp)

		runtime.ReadMemStats(&ms)
		// two decodes, each holding at most the input plus its own copy
		// and decoded fields, plus a fixed allowance for the decoder
		if got, limit := ms.TotalAlloc-before, uint64(16*len(in)+1<<20); got > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", len(in), got, limit)
		}

		if reqErr == nil {
			var buf bytes.Buffer
			if err := rpc.WriteFrame(&buf, &req); err != nil {
				t.Fatalf("decoded request %+v does not encode: %v", req, err)
			}
			var again rpc.Request
			if err := rpc.ReadFrame(&buf, &again); err != nil {
				t.Fatalf("re-encoded request does not decode: %v", err)
			}
			if again.Op != req.Op || !bytes.Equal(again.Auth, req.Auth) || again.Token != req.Token ||
				again.Forwarded != req.Forwarded || !bytes.Equal(again.Body, req.Body) {
				t.Fatalf("request changed in a round trip: %+v, then %+v", req, again)
			}
		}
		if respErr == nil {
			var buf bytes.Buffer
			if err := rpc.WriteFrame(&buf, &resp); err != nil {
				t.Fatalf("decoded response %+v does not encode: %v", resp, err)
			}
			var again rpc.Response
			if err := rpc.ReadFrame(&buf, &again); err != nil {
				t.Fatalf("re-encoded response does not decode: %v", err)
			}
			if !bytes.Equal(again.Body, resp.Body) || (again.Error == nil) != (resp.Error == nil) ||
				(resp.Error != nil && *again.Error != *resp.Error) {
				t.Fatalf("response changed in a round trip: %+v, then %+v", resp, again)
			}
		}
	})
}

// requestTypes lists every request type of the api package: a constructor
// of a zero value and a populated example.
var requestTypes = []struct {
	name    string
	new     func() any
	example any
}{
	{"GetRequest", func() any { return new(api.GetRequest) }, &api.GetRequest{Key: []byte("k"), Consistency: api.Stale}},
	{"PutRequest", func() any { return new(api.PutRequest) }, &api.PutRequest{Key: []byte("k"), Value: []byte("v"), TTLMs: 1000}},
	{"DeleteRequest", func() any { return new(api.DeleteRequest) }, &api.DeleteRequest{Key: []byte("k")}},
	{"CASRequest", func() any { return new(api.CASRequest) }, &api.CASRequest{Key: []byte("k"), Expected: []byte("a"), NewValue: []byte("b")}},
	{"CADRequest", func() any { return new(api.CADRequest) }, &api.CADRequest{Key: []byte("k"), Expected: []byte("a")}},
	{"ScanRequest", func() any { return new(api.ScanRequest) }, &api.ScanRequest{Prefix: []byte("p/"), Limit: 10, ContinuationToken: "c"}},
	{"BatchReadRequest", func() any { return new(api.BatchReadRequest) }, &api.BatchReadRequest{Keys: [][]byte{[]byte("a"), []byte("b")}}},
	{"BatchWriteRequest", func() any { return new(api.BatchWriteRequest) }, &api.BatchWriteRequest{Ops: []api.WriteOp{
		{Kind: api.WriteSet, Key: []byte("a"), Value: []byte("1"), TTLMs: 5}, {Kind: api.WriteDelete, Key: []byte("b")}}}},
	{"ConditionalBatchRequest", func() any { return new(api.ConditionalBatchRequest) }, &api.ConditionalBatchRequest{
		Conditions: []api.Condition{{Kind: api.CondValueEquals, Key: []byte("a"), Expected: []byte("1")}},
		Ops:        []api.WriteOp{{Kind: api.WriteSet, Key: []byte("a"), Value: []byte("2")}}}},
	{"TxnRequest", func() any { return new(api.TxnRequest) }, &api.TxnRequest{
		Compares: []api.Compare{{Key: []byte("a"), Target: api.TargetVersion, Result: api.Greater, Number: 1}},
		Success:  []api.TxnOp{{Kind: api.TxnAdd, Key: []byte("n"), Delta: 3}},
		Failure:  []api.TxnOp{{Kind: api.TxnRange, Key: []byte("p"), Limit: 2}}}},
	{"AddLearnerRequest", func() any { return new(api.AddLearnerRequest) }, &api.AddLearnerRequest{NodeID: 2, Addr: "ab@127.0.0.1:1"}},
	{"ChangeMembershipRequest", func() any { return new(api.ChangeMembershipRequest) }, &api.ChangeMembershipRequest{Voters: []uint64{1, 2, 3}}},
	{"PromoteRequest", func() any { return new(api.PromoteRequest) }, &api.PromoteRequest{LearnerID: 2, Replace: 1}},
	{"RemoveRequest", func() any { return new(api.RemoveRequest) }, &api.RemoveRequest{NodeID: 3}},
}

// FuzzDecodeRequestBodies decodes arbitrary bytes as every request body the
// server accepts: decoding must not panic, and what decodes must encode.
func FuzzDecodeRequestBodies(f *testing.F) {
	for _, rt := range requestTypes {
		f.Add(mustMarshal(f, rt.example))
	}
	f.Add([]byte{0xa0})                   // empty map
	f.Add([]byte{0xf6})                   // null
	f.Add([]byte{0x9f, 0x9f, 0x9f, 0xff}) // unterminated nested indefinite arrays
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, rt := range requestTypes {
			v := rt.new()
			if err := rpc.Unmarshal(in, v); err != nil {
				continue
			}
			if _, err := rpc.Marshal(v); err != nil {
				t.Fatalf("%s decoded from %x does not encode: %v", rt.name, in, err)
			}
		}
	})
}

func TestRequestTypesRoundTrip(t *testing.T) {
	for _, rt := range requestTypes {
		t.Run(rt.name, func(t *testing.T) {
			b := mustMarshal(t, rt.example)
			v := rt.new()
			if err := rpc.Unmarshal(b, v); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if again := mustMarshal(t, v); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b)
			}
		})
	}
}
