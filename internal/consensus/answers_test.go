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
	first := ps.add(answerTo("first"))
	quiet := ps.add(nil) // a caller without an early answer
	gone := ps.add(answerTo("gone"))
	ps.remove(gone) // its caller gave up
	second := ps.add(answerTo("second"))

	other := newProposals() // another node, or this node before a restart
	foreign := other.add(answerTo("foreign"))
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
