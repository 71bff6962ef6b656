// Package kv owns Aspen's replicated key/value state machine: the one Raft
// command type, its validation, and the bbolt file that holds every key, the
// TTL index, the change history and the last applied Raft index.
//
// # Model
//
// Every write is a Command appended to the Raft log. A Command carries either
// a transaction (compares, then a success or failure branch of operations) or
// a list of keys the leader's TTL sweeper found expired, plus the leader's
// wall clock when it proposed (NowMs). The state machine never reads a clock
// or randomness: applying the same log entries to two stores produces the same
// keys, records and results. The revision of a write is the Raft index of its
// command.
//
// A key whose record has ExpiresAtMs != 0 && ExpiresAtMs <= now is absent for
// every read, compare and operation, even while its record still sits in the
// file waiting for an Expire command to remove it.
//
// # Storage
//
// The bbolt file has four buckets:
//
//   - "kv": key → record (CBOR with integer keys: value, version,
//     create revision, mod revision, expiry);
//   - "ttl": 8-byte big-endian expiry (unix ms) followed by the key → empty,
//     one entry for each record with an expiry;
//   - "events": the change history, 8-byte big-endian revision and 4-byte
//     big-endian sequence within the revision → CBOR event (put or delete,
//     key, new value, previous value);
//   - "meta": "applied_index" → 8-byte big-endian Raft index,
//     "history_compacted" → the highest revision whose events may be gone,
//     and "max_now_ms" → the state machine clock (Store.MaxNowMs): a command
//     applies at max(its NowMs, that clock), so state-machine time never
//     goes backwards.
//
// # History
//
// Every change an apply makes (put, delete, delete_range, add, expiry) is
// also recorded as an event in the same transaction, in key order within its
// revision; deleting an absent key records nothing. Each applied command then
// deletes a bounded number of the oldest events of revisions at or below
// (its index − retention) (Options.HistoryRetention, default
// DefaultHistoryRetention), so the history is bounded, deterministic, and
// identical on every replica; snapshots carry it. Events reads it and
// OldestRevision says how far back it reaches; watchers wait for more with
// WaitApplied.
//
// The applied index is written in the same bbolt transaction as the data it
// covers, so the store and its applied index always agree, and log entries at
// or below it are skipped rather than applied twice.
//
// # Durability
//
// Applies commit without fsync: the Raft log (fsynced on every append) is
// what makes a write durable, and a second fsync per batch would double the
// cost of every write. Close syncs the file and writes a marker beside it
// (state.db.clean); Open removes the marker. A file found without its marker
// was not closed cleanly — after a crash or power loss its unsynced pages may
// be torn — so Open discards it and starts empty, and the node rebuilds the
// state from the newest Raft snapshot (always fsynced) and the log entries
// after it, which Raft keeps until a snapshot covers them.
//
// # Group commit
//
// Consecutive ApplyBatch calls share one bbolt write transaction, committed
// when a read needs its state (every read sees everything applied before it
// began), after commitInterval or maxPendingLogs logs, and by Snapshot,
// Backup and Close. A bbolt commit rewrites every page a transaction touched,
// so committing once per Raft batch cost more than applying the batch when
// batches were small (one sequential write: 96 µs of 420). Background readers
// that follow every revision (the hook loop) read the file as committed
// (CommittedEventKeys, WaitCommitted) so that they do not force a commit per
// batch.
//
// # Concurrency
//
// Store implements raft.BatchingFSM. Raft calls Apply, ApplyBatch, Snapshot
// and Restore from its single FSM goroutine; FSMSnapshot.Persist runs on
// another goroutine concurrently with later applies. Reads (Get, BatchGet,
// Scan, Expired, Backup), AppliedIndex and WaitApplied may be called from any
// goroutine at any time, concurrently with all of the above. A
// sync.RWMutex guards the *bbolt.DB pointer: reads and applies hold it shared,
// Restore and Close hold it exclusively while they swap or close the file.
// A mutex taken after it guards the pending write transaction.
package kv
