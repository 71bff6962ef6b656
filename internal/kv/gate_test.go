package kv

import (
	"testing"

	"github.com/hashicorp/raft"
)

// A batch applied before its log entries are durable stays invisible until
// the apply gate returns: reads, the applied index and the result.
func TestApplyGateHoldsBatchBack(t *testing.T) {
	s := openStore(t)
	release := make(chan struct{})
	atGate := make(chan uint64, 1)
	s.SetApplyGate(func(index uint64) {
		atGate <- index
		<-release
	})

	applied := make(chan []interface{})
	go func() { applied <- s.ApplyBatch([]*raft.Log{txnLog(t, 1, 1000, ops(putOp("k", "v")))}) }()
	if index := <-atGate; index != 1 {
		t.Fatalf("gate called with index %d, want 1", index)
	}
	if kv := mustGet(t, s, "k", 1000); kv != nil {
		t.Fatalf("read %q while the batch waits at the gate; want nothing", kv.Value)
	}
	if got := s.AppliedIndex(); got != 0 {
		t.Fatalf("applied index %d while the batch waits at the gate, want 0", got)
	}
	select {
	case <-applied:
		t.Fatal("ApplyBatch returned before its gate did")
	default:
	}
	close(release)
	if res := (<-applied)[0].(*ApplyResult); res.Err != nil {
		t.Fatalf("apply: %v", res.Err)
	}
	wantKV(t, mustGet(t, s, "k", 1000), "v", 1, 1, 1)
	if got := s.AppliedIndex(); got != 1 {
		t.Fatalf("applied index %d after the gate, want 1", got)
	}
}
