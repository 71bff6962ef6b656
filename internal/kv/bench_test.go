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

// BenchmarkApplyBatchOf100Keys applies batches of 16 commands that each put
// 100 keys (100-byte values) of a 10000-key space, like 16 clients writing
// batches; it reports the cost per key.
func BenchmarkApplyBatchOf100Keys(b *testing.B) {
	const commands, keys, space = 16, 100, 10000
	s := openStore(b)
	value := bytes.Repeat([]byte("v"), 100)
	index := uint64(0)
	logs := make([]*raft.Log, commands)
	b.SetBytes(commands * keys * 100)
	n := 0
	for b.Loop() {
		b.StopTimer()
		for i := range logs {
			index++
			ops := make([]api.TxnOp, keys)
			for j := range ops {
				n = (n + 7919) % space
				ops[j] = api.TxnOp{Kind: api.TxnPut, Key: fmt.Appendf(nil, "bench/%08d", n), Value: value}
			}
			logs[i] = txnLog(b, index, 0, &api.TxnRequest{Success: ops})
		}
		b.StartTimer()
		for i, r := range s.ApplyBatch(logs) {
			if res, ok := r.(*ApplyResult); !ok || res.Err != nil {
				b.Fatalf("result %d = %#v", i, r)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*commands*keys), "ns/key")
}
