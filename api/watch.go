package api

import "fmt"

// ALPNWatch is the QUIC protocol of change streams. A watch is one
// bidirectional stream: the client writes one WatchRequest frame, then the
// server writes WatchFrame frames until either side ends the stream. Frames
// use the client protocol's framing (4-byte big-endian length, CBOR).
const ALPNWatch = "aspen/watch/1"

// Watch error codes, carried by WatchError. They are specific to the watch
// protocol.
const (
	WatchCodeCompacted       = "COMPACTED"        // the requested revision is no longer kept; see OldestRevision
	WatchCodeUnauthorized    = "UNAUTHORIZED"     // missing or wrong proof of the client credential
	WatchCodeInvalidArgument = "INVALID_ARGUMENT" // a malformed request
	WatchCodeUnavailable     = "UNAVAILABLE"      // the node cannot serve (closing, storage failure)
)

// WatchRequest opens a watch of every key starting with Prefix (empty: all
// keys).
type WatchRequest struct {
	// Auth is auth.Proof(client credential, the connection's TLS exporter).
	Auth   []byte `cbor:"auth"`
	Prefix []byte `cbor:"prefix,omitempty"`
	// FromRevision is the first revision to deliver; 0 means the next
	// revision the answering node applies.
	FromRevision uint64 `cbor:"from_revision,omitempty"`
	// PrevValue asks for each event's previous value.
	PrevValue bool `cbor:"prev_value,omitempty"`
}

// WatchEventType says what an event did to its key.
type WatchEventType string

// The event types.
const (
	WatchPut    WatchEventType = "put"
	WatchDelete WatchEventType = "delete"
)

// WatchEvent is one change to one key. Revision is the Raft index of the
// command that made it; one command may make several events (one per key,
// in key order).
type WatchEvent struct {
	Type     WatchEventType `cbor:"type" json:"type"`
	Key      []byte         `cbor:"key" json:"key"`
	Value    []byte         `cbor:"value,omitempty" json:"value,omitempty"` // put only
	Revision uint64         `cbor:"revision" json:"revision"`
	// PrevValue is the previous value when the watch asked for it and the
	// key had one (HasPrevValue): a put over a live key, or a delete.
	PrevValue    []byte `cbor:"prev_value,omitempty" json:"prev_value,omitempty"`
	HasPrevValue bool   `cbor:"has_prev_value,omitempty" json:"has_prev_value,omitempty"`
}

// WatchFrame is one message of the server. Exactly one of these shapes:
//
//   - events: Events (of whole revisions unless Partial), and Revision, the
//     highest revision fully delivered so far (when not Partial);
//   - progress/keepalive: no Events, Revision = every event up to and
//     including it has been delivered. The first frame of every watch is a
//     progress frame (Revision = FromRevision − 1) that confirms the watch;
//   - error: Error set; the server then ends the stream.
//
// Partial means the events of the last revision in the frame continue in the
// next frame (a revision too large for one frame).
type WatchFrame struct {
	Events   []WatchEvent `cbor:"events,omitempty"`
	Partial  bool         `cbor:"partial,omitempty"`
	Revision uint64       `cbor:"revision,omitempty"`
	Error    *WatchError  `cbor:"error,omitempty"`
}

// WatchError ends a watch. OldestRevision is set with WatchCodeCompacted.
type WatchError struct {
	Code           string `cbor:"code"`
	Message        string `cbor:"message"`
	OldestRevision uint64 `cbor:"oldest_revision,omitempty"`
}

func (e *WatchError) Error() string { return e.Code + ": " + e.Message }

// CompactedError says that a watch asked for (or fell behind to) a revision
// the node no longer keeps. Resume from Oldest or later, knowing that the
// changes in between are lost to this watcher. It matches ErrCompacted and,
// for exit codes and HTTP statuses, ErrNotFound.
type CompactedError struct {
	Requested uint64 `json:"requested"`
	Oldest    uint64 `json:"oldest_revision"`
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("COMPACTED: revision %d is no longer kept; the oldest available revision is %d", e.Requested, e.Oldest)
}

// ErrCompacted matches every *CompactedError with errors.Is.
var ErrCompacted = &CompactedError{}

// Is matches ErrCompacted (any CompactedError).
func (e *CompactedError) Is(target error) bool {
	_, ok := target.(*CompactedError)
	return ok
}

// Unwrap maps a compaction to NOT_FOUND for CodeOf, ExitCode and HTTPStatus:
// the history asked for does not exist any more.
func (e *CompactedError) Unwrap() error {
	return &Error{Code: CodeNotFound, Message: e.Error()}
}
