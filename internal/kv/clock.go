package kv

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// keyMaxNow is the meta key of the state machine's clock: the largest
// Command.NowMs applied so far (8-byte big-endian unix ms). It lives in the
// same file as the data, so it is part of every snapshot and backup and
// survives restarts.
var keyMaxNow = []byte("max_now_ms")

// MaxNowMs returns the state machine's clock: the largest NowMs of any
// command applied so far (0 before the first). Commands are applied at
// max(NowMs, MaxNowMs()), so time as the state machine sees it never goes
// backwards, even when a leader's wall clock does or leadership moves to a
// node whose clock is behind. The node stamps commands and local reads with
// max(its clock, MaxNowMs()) for the same reason.
func (s *Store) MaxNowMs() int64 { return s.maxNow.Load() }

// readMaxNow reads keyMaxNow from db (0 when absent).
func readMaxNow(db *bbolt.DB) (int64, error) {
	var now int64
	err := db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyMaxNow)
		switch {
		case v == nil:
			return nil
		case len(v) != 8:
			return fmt.Errorf("%s is %d bytes; want 8", keyMaxNow, len(v))
		}
		now = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("kv: read the state machine clock: %w", err)
	}
	return now, nil
}

// advanceClock returns the time a command stamped nowMs applies at, never
// below the times of the commands applied before it, and records it.
func (a *applier) advanceClock(nowMs int64) int64 {
	a.maxNow = max(a.maxNow, nowMs)
	return a.maxNow
}

// storeClock persists the clock of a batch when it moved.
func (a *applier) storeClock(meta *bbolt.Bucket, before int64) error {
	if a.maxNow == before {
		return nil
	}
	if err := meta.Put(keyMaxNow, u64(uint64(a.maxNow))); err != nil {
		return fmt.Errorf("kv: store the state machine clock: %w", err)
	}
	return nil
}
