package consensus

import (
	"io"

	"github.com/hashicorp/raft"
)

// SnapshotEvent reports a snapshot of the state machine: one this node took
// (Installed false) or one it received from the leader and restored
// (Installed true). Index is the log index of the last state-machine
// command the snapshot covers (Raft's own snapshot index may be higher, by
// entries the state machine does not see such as barriers).
type SnapshotEvent struct {
	Installed bool
	Index     uint64
}

// observedFSM passes everything to the FSM and reports snapshots taken and
// installed to on. on runs on Raft's FSM or snapshot goroutine: it must not
// block.
type observedFSM struct {
	FSM
	on func(SnapshotEvent)
}

// Snapshot runs on the FSM goroutine, so the applied index is the index the
// snapshot covers.
func (f observedFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return observedSnapshot{FSMSnapshot: s, on: f.on, index: f.AppliedIndex()}, nil
}

func (f observedFSM) Restore(rc io.ReadCloser) error {
	if err := f.FSM.Restore(rc); err != nil {
		return err
	}
	f.on(SnapshotEvent{Installed: true, Index: f.AppliedIndex()})
	return nil
}

type observedSnapshot struct {
	raft.FSMSnapshot
	on    func(SnapshotEvent)
	index uint64
}

func (s observedSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.FSMSnapshot.Persist(sink); err != nil {
		return err
	}
	s.on(SnapshotEvent{Index: s.index})
	return nil
}
