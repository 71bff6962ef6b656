package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
)

// DefaultHistoryRetention is how many revisions of change history a store
// keeps by default: events of revisions at or below (applied index −
// retention) are deleted as later entries apply.
const DefaultHistoryRetention = 10_000

const (
	// compactBase is the number of old events each applied command may
	// delete on top of twice the events it added, so the history always
	// catches up with its retention bound.
	compactBase = 256
	// eventsScanBudget bounds how many stored events one Events call
	// examines, so a watcher of a rarely written prefix costs one bounded
	// read per call.
	eventsScanBudget = 10_000
)

var (
	bucketEvents = []byte("events")
	// keyCompacted holds the highest revision whose events may have been
	// deleted (8 bytes big-endian): the history is complete above it.
	keyCompacted = []byte("history_compacted")
)

// EventKind says what an Event did to its key.
type EventKind uint8

// The event kinds.
const (
	EventPut    EventKind = 1
	EventDelete EventKind = 2
)

func (k EventKind) String() string {
	switch k {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one change to one key, recorded in the store's history by the
// command that made it. The events of one revision are ordered by key (a
// transaction's writes are applied in key order).
type Event struct {
	Revision uint64
	Kind     EventKind
	Key      []byte
	Value    []byte // the new value of a put; nil for a delete
	// PrevValue is the value the key had before, when HasPrev is set: a
	// put over a live key, or a delete (including an expiry) of a stored
	// record.
	PrevValue []byte
	HasPrev   bool
}

// storedEvent is the CBOR form of an event in the events bucket; the
// revision and sequence are in its bucket key.
type storedEvent struct {
	Kind    EventKind `cbor:"1,keyasint"`
	Key     []byte    `cbor:"2,keyasint"`
	Value   []byte    `cbor:"3,keyasint,omitempty"`
	Prev    []byte    `cbor:"4,keyasint,omitempty"`
	HasPrev bool      `cbor:"5,keyasint,omitempty"`
}

// storedEventKey is the part of a storedEvent that says what changed where;
// decoding it skips the values.
type storedEventKey struct {
	Kind    EventKind `cbor:"1,keyasint"`
	Key     []byte    `cbor:"2,keyasint"`
	HasPrev bool      `cbor:"5,keyasint,omitempty"`
}

// decodeEvent decodes the stored event v of revision rev, with its values
// or, skipping them, without (Value and PrevValue nil).
func decodeEvent(rev uint64, v []byte, values bool) (Event, error) {
	if !values {
		var sk storedEventKey
		if err := recDec.Unmarshal(v, &sk); err != nil {
			return Event{}, fmt.Errorf("decode event of revision %d: %w", rev, err)
		}
		return Event{Revision: rev, Kind: sk.Kind, Key: sk.Key, HasPrev: sk.HasPrev}, nil
	}
	var se storedEvent
	if err := recDec.Unmarshal(v, &se); err != nil {
		return Event{}, fmt.Errorf("decode event of revision %d: %w", rev, err)
	}
	return se.event(rev), nil
}

// event is the stored event as an Event of revision rev: nil values of a
// put and of a previous value read back as empty ones.
func (se *storedEvent) event(rev uint64) Event {
	e := Event{Revision: rev, Kind: se.Kind, Key: se.Key, PrevValue: se.Prev, HasPrev: se.HasPrev}
	if se.Kind == EventPut {
		e.Value = se.Value
		if e.Value == nil {
			e.Value = []byte{}
		}
	}
	if e.HasPrev && e.PrevValue == nil {
		e.PrevValue = []byte{}
	}
	return e
}

// CompactedError is returned by Events for a revision the history no longer
// holds. Oldest is the oldest revision that can still be read.
type CompactedError struct {
	Requested, Oldest uint64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("kv: revision %d is compacted; the oldest available revision is %d", e.Requested, e.Oldest)
}

// ErrCompacted matches every *CompactedError with errors.Is.
var ErrCompacted = errors.New("kv: revision compacted")

// Is makes errors.Is(err, ErrCompacted) hold.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

func eventKey(rev uint64, seq uint32) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, rev)
	binary.BigEndian.PutUint32(b[8:], seq)
	return b
}

// requireHeld returns a *CompactedError if the events of revision rev are
// compacted.
func requireHeld(tx *bbolt.Tx, rev uint64) error {
	mark, err := readCompacted(tx)
	if err != nil {
		return err
	}
	if rev <= mark {
		return &CompactedError{Requested: rev, Oldest: mark + 1}
	}
	return nil
}

func readCompacted(tx *bbolt.Tx) (uint64, error) {
	v := tx.Bucket(bucketMeta).Get(keyCompacted)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("history compaction mark is %d bytes; want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// initHistory creates the events bucket. A store that already applied
// entries without keeping history (made by an older version) marks
// everything up to its applied index as compacted: its history starts there.
func initHistory(tx *bbolt.Tx, applied uint64) error {
	if tx.Bucket(bucketEvents) != nil {
		return nil
	}
	if _, err := tx.CreateBucket(bucketEvents); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketEvents, err)
	}
	if applied == 0 {
		return nil
	}
	return tx.Bucket(bucketMeta).Put(keyCompacted, u64(applied))
}

// history records the events of one command inside the apply transaction.
type history struct {
	b         *bbolt.Bucket
	meta      *bbolt.Bucket
	retention uint64
	index     uint64 // revision of the command being applied
	seq       uint32 // events recorded at index so far
}

// begin starts the events of the command at index.
func (h *history) begin(index uint64) {
	h.index, h.seq = index, 0
}

// record appends one event of the current command.
func (h *history) record(e *storedEvent) error {
	b, err := recEnc.Marshal(e)
	if err != nil {
		return fmt.Errorf("kv: encode event of key %q: %w", e.Key, err)
	}
	if err := h.b.Put(eventKey(h.index, h.seq), b); err != nil {
		return fmt.Errorf("kv: record event %d.%d of key %q: %w", h.index, h.seq, e.Key, err)
	}
	h.seq++
	return nil
}

// compact ends the current command: it deletes at most compactBase + 2×(the
// command's events) of the oldest events whose revision is at or below
// index − retention, and moves the compaction mark. It depends only on the
// state and the index, so every replica compacts identically.
func (h *history) compact() error {
	if h.retention == 0 || h.index <= h.retention {
		return nil
	}
	limit := h.index - h.retention
	budget := compactBase + 2*int(h.seq)
	mark, err := readCompacted(h.b.Tx())
	if err != nil {
		return err
	}
	newMark := mark
	c := h.b.Cursor()
	// Compaction deletes in revision order, so no event is older than the
	// mark. Seeking there skips the leaves emptied by earlier deletes of the
	// same write transaction, which First would walk through.
	k, _ := c.Seek(eventKey(mark, 0))
	for ; k != nil && budget > 0; budget-- {
		if len(k) != 12 {
			return fmt.Errorf("kv: history key is %d bytes; want 12", len(k))
		}
		rev := binary.BigEndian.Uint64(k)
		if rev > limit {
			break
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("kv: compact history event of revision %d: %w", rev, err)
		}
		newMark = max(newMark, rev)
		// after Delete the cursor may point at the next item or past it;
		// Seek finds the next remaining event
		k, _ = c.Seek(eventKey(rev, 0))
	}
	if k == nil || binary.BigEndian.Uint64(k) > limit {
		newMark = max(newMark, limit) // everything at or below limit is gone
	}
	if newMark == mark {
		return nil
	}
	return h.meta.Put(keyCompacted, u64(newMark))
}

// OldestRevision returns the oldest revision whose events the history still
// holds completely: Events accepts any fromRevision at or above it.
func (s *Store) OldestRevision() (uint64, error) {
	var mark uint64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		mark, err = readCompacted(tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("kv: oldest revision: %w", err)
	}
	return mark + 1, nil
}

// Events returns the recorded events whose key has prefix, of revisions at
// or above fromRevision, in revision order, stopping at a revision boundary
// once limit events (limit <= 0 means 1000) are collected or a bounded
// number of events has been examined; a single revision is never split, so
// more than limit events may come back. next is the revision to continue
// from: every event of a revision below next that matches has been returned.
// When fromRevision is compacted the error is a *CompactedError.
//
// Events reads one bbolt read transaction; it only returns events of applied
// revisions. Use WaitApplied(ctx, next) to wait for more.
func (s *Store) Events(prefix []byte, fromRevision uint64, limit int) (events []Event, next uint64, err error) {
	return s.events(s.view, prefix, fromRevision, limit, true)
}

// CommittedEventKeys is Events over the file as committed, which may lag the
// applied state (use WaitCommitted to wait for more), and without the
// values: every event's Value and PrevValue are nil (HasPrev still says
// whether it had one). It serves background readers that follow every
// revision (the hook loop): they do not force a commit per apply, and fetch
// the values of the few events they act on with CommittedEvent.
func (s *Store) CommittedEventKeys(prefix []byte, fromRevision uint64, limit int) (events []Event, next uint64, err error) {
	return s.events(s.viewCommitted, prefix, fromRevision, limit, false)
}

// CommittedEvent returns the committed event at index (its position among
// all the events of its revision) of revision rev, values included. An event
// compacted since it was listed yields a *CompactedError.
func (s *Store) CommittedEvent(rev uint64, index int) (Event, error) {
	var e Event
	err := s.viewCommitted(func(tx *bbolt.Tx) error {
		if err := requireHeld(tx, rev); err != nil {
			return err
		}
		v := tx.Bucket(bucketEvents).Get(eventKey(rev, uint32(index)))
		if v == nil {
			return fmt.Errorf("no event %d of revision %d", index, rev)
		}
		var err error
		e, err = decodeEvent(rev, v, true)
		return err
	})
	if err != nil {
		var ce *CompactedError
		if errors.As(err, &ce) {
			return Event{}, ce
		}
		return Event{}, fmt.Errorf("kv: event %d of revision %d: %w", index, rev, err)
	}
	return e, nil
}

func (s *Store) events(view func(func(*bbolt.Tx) error) error, prefix []byte, fromRevision uint64, limit int, values bool) (events []Event, next uint64, err error) {
	if limit <= 0 {
		limit = 1000
	}
	fromRevision = max(fromRevision, 1)
	err = view(func(tx *bbolt.Tx) error {
		applied, err := readApplied(tx)
		if err != nil {
			return err
		}
		if err := requireHeld(tx, fromRevision); err != nil {
			return err
		}
		next = max(fromRevision, applied+1)
		c := tx.Bucket(bucketEvents).Cursor()
		examined := 0
		var cur uint64 // revision of the last event examined
		for k, v := c.Seek(eventKey(fromRevision, 0)); k != nil; k, v = c.Next() {
			if len(k) != 12 {
				return fmt.Errorf("history key is %d bytes; want 12", len(k))
			}
			rev := binary.BigEndian.Uint64(k)
			if rev != cur {
				// a revision boundary: stop here if we have enough
				if cur != 0 && (len(events) >= limit || examined >= eventsScanBudget) {
					next = rev
					return nil
				}
				cur = rev
			}
			examined++
			e, err := decodeEvent(rev, v, values)
			if err != nil {
				return err
			}
			if bytes.HasPrefix(e.Key, prefix) {
				events = append(events, e)
			}
		}
		return nil
	})
	if err != nil {
		var ce *CompactedError
		if errors.As(err, &ce) {
			return nil, 0, ce
		}
		return nil, 0, fmt.Errorf("kv: events of prefix %q from revision %d: %w", prefix, fromRevision, err)
	}
	return events, next, nil
}
