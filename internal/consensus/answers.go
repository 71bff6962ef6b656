package consensus

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Proposals are answered from the FSM goroutine.
//
// Raft answers a proposal's future after the FSM applied the whole batch it
// was in, and a caller waiting on the future with a context needs a goroutine
// of its own to watch it: the result reached the caller two goroutine
// hand-overs after the FSM had it. Instead each proposal carries an ID in its
// log entry's Extensions, and the FSM goroutine, right after the FSM applied
// a batch and shows its results (see FSM.SetApplyGate), hands each of this
// node's proposals its result: the caller wakes once, and can have its
// answer written on the spot (ProposeAnswered). The future still reports
// failures (not leader, leadership lost, shutdown).
//
// An ID is this process's random tag and a sequence number: entries proposed
// by other nodes, or by this node before a restart, never match a waiting
// proposal.

// proposal is a proposal waiting for its result.
type proposal struct {
	ext     [proposalIDLen]byte
	answer  func(result any) // optional; runs on the FSM goroutine
	applied chan any         // receives the FSM's result; nil for a detached proposal
}

const proposalIDLen = 16

// proposals are this node's proposals waiting for their results.
type proposals struct {
	tag  uint64
	next atomic.Uint64
	mu   sync.Mutex
	wait map[uint64]*proposal // by sequence number
}

func newProposals() *proposals {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &proposals{tag: binary.BigEndian.Uint64(b[:]), wait: make(map[uint64]*proposal)}
}

// add registers a proposal; its ext is the ID to put in the log entry. A
// detached proposal has no caller waiting for its result: only answer gets it.
func (ps *proposals) add(answer func(any), detached bool) *proposal {
	p := &proposal{answer: answer}
	if !detached {
		p.applied = make(chan any, 1)
	}
	seq := ps.next.Add(1)
	binary.BigEndian.PutUint64(p.ext[:8], ps.tag)
	binary.BigEndian.PutUint64(p.ext[8:], seq)
	ps.mu.Lock()
	ps.wait[seq] = p
	ps.mu.Unlock()
	return p
}

// remove forgets a proposal its caller no longer waits for, and reports
// whether it was still waiting (the FSM had not taken it).
func (ps *proposals) remove(p *proposal) bool {
	seq := binary.BigEndian.Uint64(p.ext[8:])
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_, waiting := ps.wait[seq]
	delete(ps.wait, seq)
	return waiting
}

// take removes and returns the proposal whose ID is ext, if it waits.
func (ps *proposals) take(ext []byte) *proposal {
	if len(ext) != proposalIDLen || binary.BigEndian.Uint64(ext) != ps.tag {
		return nil
	}
	seq := binary.BigEndian.Uint64(ext[8:])
	ps.mu.Lock()
	p := ps.wait[seq]
	delete(ps.wait, seq)
	ps.mu.Unlock()
	return p
}

// answeringFSM hands this node's proposals their results as soon as the FSM
// returns them.
type answeringFSM struct {
	FSM
	proposals *proposals
}

func (f answeringFSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// answerChunkBytes bounds the command bytes applied before the proposals
// among them are answered. Raft hands the FSM every entry committed since
// its last batch, up to MaxAppendEntries: applying big entries (a batch of
// many keys each) all before answering any would keep their callers — who
// would otherwise send their next requests while the rest applies — waiting
// for the whole lot.
const answerChunkBytes = 32 << 10

// ApplyBatch applies logs in chunks of about answerChunkBytes; after each
// chunk it writes every early answer of the chunk back to back (they leave
// together), and only then wakes the callers.
func (f answeringFSM) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, 0, len(logs))
	for len(logs) > 0 {
		n, size := 0, 0
		for n < len(logs) && size < answerChunkBytes {
			size += len(logs[n].Data)
			n++
		}
		results = append(results, f.applyChunk(logs[:n])...)
		logs = logs[n:]
	}
	return results
}

func (f answeringFSM) applyChunk(logs []*raft.Log) []any {
	results := f.FSM.ApplyBatch(logs)
	type handed struct {
		p   *proposal
		res any
	}
	var mine []handed
	for i, l := range logs {
		if len(l.Extensions) == 0 {
			continue
		}
		if p := f.proposals.take(l.Extensions); p != nil {
			mine = append(mine, handed{p, results[i]})
			if p.answer != nil {
				p.answer(results[i])
			}
		}
	}
	for _, h := range mine {
		if h.p.applied != nil {
			h.p.applied <- h.res
		}
	}
	return results
}
