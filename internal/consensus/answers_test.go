package consensus

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

// indexFSM answers each log with "result <index>".
type indexFSM struct{ FSM }

func (indexFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		out[i] = fmt.Sprintf("result %d", l.Index)
	}
	return out
}

// The FSM goroutine hands this node's waiting proposals their results, all
// early answers of a batch before any caller is woken; entries proposed
// elsewhere, or by a caller that stopped waiting, are only applied.
func TestProposalsGetTheirResultsFromTheFSM(t *testing.T) {
	ps := newProposals()
	var events []string
	answerTo := func(name string) func(any) {
		return func(res any) { events = append(events, fmt.Sprintf("answer %s: %v", name, res)) }
	}
	first := ps.add(answerTo("first"), false)
	quiet := ps.add(nil, false) // a caller without an early answer
	gone := ps.add(answerTo("gone"), false)
	ps.remove(gone) // its caller gave up
	second := ps.add(answerTo("second"), false)

	other := newProposals() // another node, or this node before a restart
	foreign := other.add(answerTo("foreign"), false)
	// the same sequence number under another tag
	if [8]byte(foreign.ext[8:]) != [8]byte(first.ext[8:]) {
		t.Fatalf("test set-up: sequence numbers differ")
	}

	logs := []*raft.Log{
		{Index: 1, Type: raft.LogCommand, Extensions: first.ext[:]},
		{Index: 2, Type: raft.LogCommand},
		{Index: 3, Type: raft.LogCommand, Extensions: foreign.ext[:]},
		{Index: 4, Type: raft.LogCommand, Extensions: gone.ext[:]},
		{Index: 5, Type: raft.LogCommand, Extensions: quiet.ext[:]},
		{Index: 6, Type: raft.LogCommand, Extensions: second.ext[:]},
	}
	fsm := answeringFSM{FSM: indexFSM{}, proposals: ps}
	results := fsm.ApplyBatch(logs)
	if want := "result 6"; results[5] != want {
		t.Fatalf("results[5] = %v, want %q (the FSM's results pass through)", results[5], want)
	}
	// every answer was written before any waiting caller could wake
	for _, p := range []*proposal{first, quiet, second} {
		select {
		case res := <-p.applied:
			events = append(events, fmt.Sprintf("woken: %v", res))
		default:
			t.Fatalf("proposal %x got no result", p.ext)
		}
	}
	want := []string{"answer first: result 1", "answer second: result 6", "woken: result 1", "woken: result 5", "woken: result 6"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	select {
	case res := <-gone.applied:
		t.Fatalf("a proposal no one waits for got %v", res)
	case res := <-foreign.applied:
		t.Fatalf("another node's proposal got %v", res)
	default:
	}
	if len(ps.wait) != 0 {
		t.Fatalf("%d proposals still registered after their results", len(ps.wait))
	}
	// a result is handed over once, even if Raft applies the entry again
	fsm.ApplyBatch(logs[:1])
	if len(events) != len(want) {
		t.Fatalf("events after a repeated apply: %q", events)
	}
}

// chunkFSM records the indexes of each batch it is given.
type chunkFSM struct {
	FSM
	batches *[][]uint64
}

func (f chunkFSM) ApplyBatch(logs []*raft.Log) []any {
	var idx []uint64
	for _, l := range logs {
		idx = append(idx, l.Index)
	}
	*f.batches = append(*f.batches, idx)
	return indexFSM{}.ApplyBatch(logs)
}

// A batch of big entries is applied in chunks of about answerChunkBytes,
// and the proposals of a chunk are answered before the next chunk applies.
func TestBigBatchesAreAnsweredChunkByChunk(t *testing.T) {
	ps := newProposals()
	var batches [][]uint64
	var answeredAfter []int // batches applied when each answer ran
	var logs []*raft.Log
	var waiting []*proposal
	for i := range 7 {
		p := ps.add(func(any) { answeredAfter = append(answeredAfter, len(batches)) }, false)
		waiting = append(waiting, p)
		logs = append(logs, &raft.Log{
			Index: uint64(i + 1), Type: raft.LogCommand, Extensions: p.ext[:],
			Data: make([]byte, answerChunkBytes/3+1), // three entries pass the bound
		})
	}
	logs = append(logs, &raft.Log{Index: 8, Type: raft.LogCommand}) // small: joins the last chunk
	results := answeringFSM{FSM: chunkFSM{batches: &batches}, proposals: ps}.ApplyBatch(logs)

	if want := [][]uint64{{1, 2, 3}, {4, 5, 6}, {7, 8}}; !slices.EqualFunc(batches, want, slices.Equal) {
		t.Fatalf("FSM batches %v, want %v", batches, want)
	}
	if want := []int{1, 1, 1, 2, 2, 2, 3}; !slices.Equal(answeredAfter, want) {
		t.Fatalf("answers ran after batches %v, want %v", answeredAfter, want)
	}
	if len(results) != len(logs) {
		t.Fatalf("%d results for %d logs", len(results), len(logs))
	}
	for i, res := range results {
		if want := fmt.Sprintf("result %d", i+1); res != want {
			t.Fatalf("results[%d] = %v, want %q", i, res, want)
		}
	}
	for i, p := range waiting {
		if res := <-p.applied; res != fmt.Sprintf("result %d", i+1) {
			t.Fatalf("proposal %d got %v", i+1, res)
		}
	}
}
