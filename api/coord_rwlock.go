package api

// Operation names of the read/write locks. The blocking read and write are
// client-side loops over the try operations (see package coordination).
const (
	OpRWLockTryRead      = "rwlock.try_read"
	OpRWLockTryWrite     = "rwlock.try_write"
	OpRWLockReleaseRead  = "rwlock.release_read"
	OpRWLockReleaseWrite = "rwlock.release_write"
	OpRWLockDowngrade    = "rwlock.downgrade"
	OpRWLockStatus       = "rwlock.status"
)

// MaxRWLockReaders is the number of live readers of one read/write lock.
const MaxRWLockReaders = 256

// RWLockRequest is the request of every read/write lock operation.
//
// TTLMs (default 30000) is how long a read or write hold lasts. Wait, on
// try_write, registers the caller as a waiting writer when it is refused:
// until it acquires, or for a few seconds after its last attempt, new
// readers are refused (writer preference). FencingToken is needed by
// release_write and downgrade.
type RWLockRequest struct {
	Name         string `cbor:"name" json:"name"`
	HolderID     string `cbor:"holder_id,omitempty" json:"holder_id,omitempty"`
	TTLMs        int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
	FencingToken uint64 `cbor:"fencing_token,omitempty" json:"fencing_token,omitempty"`
	Wait         bool   `cbor:"wait,omitempty" json:"wait,omitempty"`
}

// RWLockResponse is the answer of every read/write lock operation. Mode is
// free, read or write after the operation; FencingToken is the token of
// the current (or, when free or read, the last) write hold; DeadlineMs is
// the caller's deadline on success.
type RWLockResponse struct {
	Operation     string `cbor:"operation" json:"operation"`
	Name          string `cbor:"name" json:"name"`
	IsSuccess     bool   `cbor:"is_success" json:"is_success"`
	Mode          string `cbor:"mode" json:"mode"`
	FencingToken  uint64 `cbor:"fencing_token" json:"fencing_token"`
	DeadlineMs    int64  `cbor:"deadline_ms" json:"deadline_ms"`
	ReaderCount   int    `cbor:"reader_count" json:"reader_count"`
	WriterHolder  string `cbor:"writer_holder" json:"writer_holder"`
	PendingWriter int    `cbor:"pending_writers" json:"pending_writers"`
	Error         string `cbor:"error,omitempty" json:"error,omitempty"`
}
