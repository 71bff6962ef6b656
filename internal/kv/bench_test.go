package kv

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/hashicorp/raft"
)

func BenchmarkEncodeCommand(b *testing.B) {
	c := sampleCommand()
	for b.Loop() {
		if _, err := EncodeCommand(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	data, err := EncodeCommand(sampleCommand())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeCommand(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyBatch applies batches of 64 single-put commands with 100-byte
// values; batches share bbolt write transactions (see "Group commit").
func BenchmarkApplyBatch(b *testing.B) {
	const batch = 64
	s := openStore(b)
	value := bytes.Repeat([]byte("v"), 100)
	index := uint64(0)
	logs := make([]*raft.Log, batch)
	b.SetBytes(batch * 100)
	for b.Loop() {
		b.StopTimer()
		for i := range logs {
			index++
			logs[i] = txnLog(b, index, 0, &api.TxnRequest{Success: []api.TxnOp{{
				Kind: api.TxnPut, Key: []byte(fmt.Sprintf("bench/%08d", index%4096)), Value: value,
			}}})
		}
		b.StartTimer()
		for i, r := range s.ApplyBatch(logs) {
			if res, ok := r.(*ApplyResult); !ok || res.Err != nil {
				b.Fatalf("result %d = %#v", i, r)
			}
		}
	}
}
