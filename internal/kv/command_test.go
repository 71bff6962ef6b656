package kv

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
)

func TestValidateTxn(t *testing.T) {
	key := func(n int) []byte { return bytes.Repeat([]byte("k"), n) }
	nOps := func(n int) []api.TxnOp {
		out := make([]api.TxnOp, n)
		for i := range out {
			out[i] = putOp("k", "v")
		}
		return out
	}
	nCmps := func(n int) []api.Compare {
		out := make([]api.Compare, n)
		for i := range out {
			out[i] = api.Compare{Key: []byte("k"), Target: api.TargetVersion, Result: api.Equal}
		}
		return out
	}
	op := func(o api.TxnOp) *api.TxnRequest { return &api.TxnRequest{Success: []api.TxnOp{o}} }
	cmp := func(c api.Compare) *api.TxnRequest { return &api.TxnRequest{Compares: []api.Compare{c}} }
	tests := []struct {
		name    string
		txn     *api.TxnRequest
		wantErr string // substring; empty = valid
	}{
		{"nil", nil, "txn is missing"},
		{"empty", &api.TxnRequest{}, ""},
		{"max key", op(api.TxnOp{Kind: api.TxnPut, Key: key(1024)}), ""},
		{"key too large", op(api.TxnOp{Kind: api.TxnPut, Key: key(1025)}), "success[0].key is 1025 bytes; the limit is 1024"},
		{"empty key", op(api.TxnOp{Kind: api.TxnDelete}), "success[0].key is empty"},
		{"empty delete_range prefix", op(api.TxnOp{Kind: api.TxnDeleteRange}), "success[0].key is empty"},
		{"empty range prefix", op(api.TxnOp{Kind: api.TxnRange}), ""},
		{"range prefix too large", op(api.TxnOp{Kind: api.TxnRange, Key: key(1025)}), "success[0].key is 1025 bytes; the limit is 1024"},
		{"max value", op(api.TxnOp{Kind: api.TxnPut, Key: key(1), Value: make([]byte, api.MaxValueSize)}), ""},
		{"value too large", op(api.TxnOp{Kind: api.TxnPut, Key: key(1), Value: make([]byte, api.MaxValueSize+1)}), "success[0].value is 1048577 bytes; the limit is 1048576"},
		{"value on get", op(api.TxnOp{Kind: api.TxnGet, Key: key(1), Value: []byte("x")}), "value is only for put"},
		{"unknown kind", op(api.TxnOp{Kind: "upsert", Key: key(1)}), `success[0].kind "upsert" is unknown`},
		{"max ttl", op(api.TxnOp{Kind: api.TxnPut, Key: key(1), TTLMs: api.MaxTTLMs}), ""},
		{"ttl too large", op(api.TxnOp{Kind: api.TxnPut, Key: key(1), TTLMs: api.MaxTTLMs + 1}), "success[0].ttl_ms is 315360000001; want 0..315360000000"},
		{"negative ttl", op(api.TxnOp{Kind: api.TxnPut, Key: key(1), TTLMs: -1}), "ttl_ms is -1"},
		{"ttl on add", op(api.TxnOp{Kind: api.TxnAdd, Key: key(1), TTLMs: 5}), ""},
		{"ttl on delete", op(api.TxnOp{Kind: api.TxnDelete, Key: key(1), TTLMs: 5}), "ttl_ms is only for put and add"},
		{"delta on add", op(api.TxnOp{Kind: api.TxnAdd, Key: key(1), Delta: -5}), ""},
		{"delta on put", op(api.TxnOp{Kind: api.TxnPut, Key: key(1), Delta: 5}), "success[0].delta is 5 but kind is put; delta is only for add"},
		{"max range limit", op(api.TxnOp{Kind: api.TxnRange, Limit: api.MaxScanLimit}), ""},
		{"range limit too large", op(api.TxnOp{Kind: api.TxnRange, Limit: api.MaxScanLimit + 1}), "success[0].limit is 10001; want 0..10000"},
		{"negative range limit", op(api.TxnOp{Kind: api.TxnRange, Limit: -1}), "limit is -1"},
		{"limit on get", op(api.TxnOp{Kind: api.TxnGet, Key: key(1), Limit: 3}), "limit is only for range"},
		{"max ops", &api.TxnRequest{Success: nOps(100), Failure: nOps(100)}, ""},
		{"too many success ops", &api.TxnRequest{Success: nOps(101)}, "success has 101 operations; the limit is 100"},
		{"too many failure ops", &api.TxnRequest{Failure: nOps(101)}, "failure has 101 operations; the limit is 100"},
		{"failure op checked", &api.TxnRequest{Failure: []api.TxnOp{{Kind: api.TxnGet}}}, "failure[0].key is empty"},
		{"max compares", &api.TxnRequest{Compares: nCmps(100)}, ""},
		{"too many compares", &api.TxnRequest{Compares: nCmps(101)}, "compares has 101 entries; the limit is 100"},
		{"compare key too large", cmp(api.Compare{Key: key(1025), Target: api.TargetVersion, Result: api.Equal}), "compares[0].key is 1025 bytes; the limit is 1024"},
		{"compare empty key", cmp(api.Compare{Target: api.TargetVersion, Result: api.Equal}), "compares[0].key is empty"},
		{"compare unknown target", cmp(api.Compare{Key: key(1), Target: "lease", Result: api.Equal}), `compares[0].target "lease" is unknown`},
		{"compare unknown result", cmp(api.Compare{Key: key(1), Target: api.TargetValue, Result: ">="}), `compares[0].result ">=" is unknown`},
		{"compare value too large", cmp(api.Compare{Key: key(1), Target: api.TargetValue, Result: api.Equal, Value: make([]byte, api.MaxValueSize+1)}), "compares[0].value is 1048577 bytes; the limit is 1048576"},
		{"compare number on value", cmp(api.Compare{Key: key(1), Target: api.TargetValue, Result: api.Equal, Number: 1}), "number is only for"},
		{"compare value on version", cmp(api.Compare{Key: key(1), Target: api.TargetVersion, Result: api.Equal, Value: []byte("1")}), "value is only for target value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTxn(tt.txn)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateTxn = %v; want nil", err)
				}
				return
			}
			wantCode(t, err, api.CodeInvalidArgument)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateTxn = %q; want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateCommandInApply(t *testing.T) {
	tests := []struct {
		name    string
		cmd     *Command
		wantErr string
	}{
		{"neither", &Command{NowMs: 1}, "neither txn nor expire"},
		{"both", &Command{Txn: &api.TxnRequest{}, Expire: []ExpiredKey{{Key: []byte("k")}}}, "both txn and expire"},
		{"negative clock", &Command{NowMs: -1, Txn: &api.TxnRequest{}}, "now_ms is -1"},
		{"clock would overflow", &Command{NowMs: maxNowMs + 1, Txn: &api.TxnRequest{}}, "now_ms is"},
		{"expire empty key", &Command{Expire: []ExpiredKey{{}}}, "expire[0].key is empty"},
		{"expire too many", &Command{Expire: make([]ExpiredKey, MaxExpireKeys+1)}, "expire has 10001 keys; the limit is 10000"},
		{"invalid txn", &Command{Txn: ops(api.TxnOp{Kind: api.TxnPut, Key: make([]byte, 1025)})}, "success[0].key is 1025 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			res := applyOne(t, s, cmdLog(t, 1, tt.cmd))
			wantCode(t, res.Err, api.CodeInvalidArgument)
			if !strings.Contains(res.Err.Error(), tt.wantErr) {
				t.Fatalf("Err = %q; want it to contain %q", res.Err, tt.wantErr)
			}
			if s.AppliedIndex() != 1 {
				t.Fatalf("AppliedIndex = %d; want 1", s.AppliedIndex())
			}
			if d := dump(t, s); len(d["kv"]) != 0 {
				t.Fatalf("kv bucket has %d keys; want 0", len(d["kv"]))
			}
		})
	}
}

func sampleCommand() *Command {
	return &Command{
		NowMs: 1_700_000_000_000,
		Txn: &api.TxnRequest{
			Compares: []api.Compare{
				{Key: []byte("k"), Target: api.TargetValue, Result: api.Equal, Value: []byte("old")},
				{Key: []byte("n"), Target: api.TargetVersion, Result: api.Greater, Number: 3},
			},
			Success: []api.TxnOp{putTTL("k", "new", 1000), addOp("n", -2), {Kind: api.TxnRange, Key: []byte("p/"), Limit: 10}},
			Failure: []api.TxnOp{getOp("k")},
		},
	}
}

func TestEncodeDecodeCommand(t *testing.T) {
	tests := []struct {
		name string
		cmd  *Command
	}{
		{"txn", sampleCommand()},
		{"expire", &Command{NowMs: 5, Expire: []ExpiredKey{{Key: []byte("a"), ModRevision: 7}, {Key: []byte{0, 0xff}, ModRevision: 1}}}},
		{"empty txn", &Command{Txn: &api.TxnRequest{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeCommand(tt.cmd)
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := EncodeCommand(tt.cmd)
			if !bytes.Equal(b, b2) {
				t.Fatal("encoding is not deterministic")
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.cmd) {
				t.Fatalf("round trip = %+v; want %+v", got, tt.cmd)
			}
		})
	}
	if _, err := EncodeCommand(nil); err == nil {
		t.Fatal("EncodeCommand(nil) succeeded")
	}
}

func TestDecodeCommandRejectsGarbage(t *testing.T) {
	good, err := EncodeCommand(&Command{NowMs: 1, Txn: &api.TxnRequest{}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not cbor", []byte("hello")},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte(nil), good...), 0x00)},
		{"array instead of map", []byte{0x80}},
		{"unknown field", []byte{0xa1, 0x63, 'f', 'o', 'o', 0x01}},                                                            // {"foo": 1}
		{"duplicate field", []byte{0xa2, 0x66, 'n', 'o', 'w', '_', 'm', 's', 0x01, 0x66, 'n', 'o', 'w', '_', 'm', 's', 0x02}}, // {"now_ms":1,"now_ms":2}
		{"wrong case", []byte{0xa1, 0x66, 'N', 'O', 'W', '_', 'M', 'S', 0x01}},
		{"wrong type", []byte{0xa1, 0x66, 'n', 'o', 'w', '_', 'm', 's', 0x61, 'x'}},
		{"huge array length", []byte{0xa1, 0x66, 'e', 'x', 'p', 'i', 'r', 'e', 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := DecodeCommand(tt.in); err == nil {
				t.Fatalf("DecodeCommand(%x) = %+v; want an error", tt.in, c)
			}
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []*Command{
		sampleCommand(),
		{NowMs: 5, Expire: []ExpiredKey{{Key: []byte("a"), ModRevision: 7}}},
		{Txn: &api.TxnRequest{}},
		{},
	} {
		b, err := EncodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x63, 'f', 'o', 'o', 0x01})
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := DecodeCommand(in)
		if err != nil {
			return
		}
		if c.Txn != nil {
			_ = ValidateTxn(c.Txn) // must not panic
		}
		_ = validateCommand(c)
		// Whatever decodes re-encodes to a stable form.
		b1, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := DecodeCommand(b1)
		if err != nil {
			t.Fatalf("decode re-encoded %x: %v", b1, err)
		}
		b2, err := EncodeCommand(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable: %x then %x", b1, b2)
		}
	})
}
