package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// ErrClosed is returned by every method of a closed Store (and of one whose
// Restore failed after closing the old file).
var ErrClosed = errors.New("kv: store is closed")

var (
	bucketKV   = []byte("kv")
	bucketTTL  = []byte("ttl")
	bucketMeta = []byte("meta")
	keyApplied = []byte("applied_index")
)

const (
	// initialMmapSize is mapped up front so that a growing file rarely needs a
	// remap: bbolt remaps under a lock that waits for every open read
	// transaction, including a long snapshot Persist.
	initialMmapSize = 1 << 30
	// openTimeout bounds the wait for the file lock held by another process.
	openTimeout = 5 * time.Second
	// commitInterval and maxPendingLogs bound how long, and over how many
	// logs, applies share one bbolt write transaction before it is committed
	// (reads commit it earlier when they need its state).
	commitInterval = 10 * time.Millisecond
	maxPendingLogs = 4096
)

var _ raft.BatchingFSM = (*Store)(nil)

// Store is the key/value state machine on one bbolt file. It implements
// raft.BatchingFSM and serves local reads at its current applied state.
//
// All methods are safe for concurrent use; see the package documentation for
// which calls Raft serializes. Reads cost one bbolt read transaction;
// applies share a pending bbolt write transaction (see ApplyBatch).
type Store struct {
	path   string
	logger *slog.Logger

	mu sync.RWMutex // guards db; held shared by reads and applies, exclusively by Restore and Close
	db *bbolt.DB    // nil once closed

	applied   atomic.Uint64 // last applied Raft index (committed to db or pending in wtx)
	committed atomic.Uint64 // last applied Raft index committed to db, seen by new read transactions
	maxNow    atomic.Int64  // the state machine clock (MaxNowMs) as of applied

	txMu         sync.Mutex    // guards wtx, pendingLogs, pendingSince; taken after mu
	wtx          *bbolt.Tx     // write transaction holding applied but uncommitted logs, or nil
	pendingLogs  int           // logs applied in wtx
	pendingSince time.Time     // when wtx began
	kick         chan struct{} // wakes flushLoop when a pending transaction begins

	retention uint64 // revisions of history kept; set once by OpenWith
	// applyGate, if set, is called by ApplyBatch with the batch's last index
	// before anything it applied becomes visible; set once by SetApplyGate
	applyGate func(index uint64)

	waitMu   sync.Mutex    // guards advance
	advance  chan struct{} // closed and replaced whenever applied changes
	closed   chan struct{} // closed by Close
	closeErr error
	once     sync.Once
}

// ApplyResult is the outcome of one command log, returned by Apply and (one
// per log) by ApplyBatch as a *ApplyResult; Raft hands it to the proposer as
// ApplyFuture.Response(). Exactly one of Txn, Expired or Err is meaningful:
// Txn for a transaction that applied, Expired (keys removed) for an Expire
// command, Err (an *api.Error) for a command that applied nothing.
type ApplyResult struct {
	Txn     *api.TxnResponse
	Expired int
	Err     error
}

// cleanSuffix names the marker file Close writes beside the store after a
// final sync; its presence at Open means the file was closed cleanly.
const cleanSuffix = ".clean"

// Open opens (creating if needed) the bbolt file at path, creates the
// buckets and reads the stored applied index. A nil logger discards logs.
//
// Applies do not fsync (see the package documentation, "Durability"): a file
// that was not closed cleanly is not trusted and is replaced by an empty
// store, which Raft rebuilds from the newest snapshot and the log.
func Open(path string, logger *slog.Logger) (*Store, error) {
	return OpenWith(path, logger, Options{})
}

// Options tunes a Store. The zero value means the defaults.
type Options struct {
	// HistoryRetention is how many revisions of change history to keep
	// (default DefaultHistoryRetention). Compaction is part of applying, so
	// every replica of a cluster must use the same value for their
	// histories to stay identical.
	HistoryRetention uint64
}

// OpenWith is Open with options.
func OpenWith(path string, logger *slog.Logger, opts Options) (*Store, error) {
	if opts.HistoryRetention == 0 {
		opts.HistoryRetention = DefaultHistoryRetention
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := discardIfUnclean(path, logger); err != nil {
		return nil, err
	}
	db, applied, err := openDB(path)
	if err != nil {
		return nil, err
	}
	// from now on a crash leaves the file unclean
	if err := os.Remove(path + cleanSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = db.Close()
		return nil, fmt.Errorf("kv: open %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("kv: open %s: %w", path, err)
	}
	s := &Store{
		path:      path,
		logger:    logger,
		db:        db,
		advance:   make(chan struct{}),
		closed:    make(chan struct{}),
		kick:      make(chan struct{}, 1),
		retention: opts.HistoryRetention,
	}
	s.applied.Store(applied)
	s.committed.Store(applied)
	clock, err := readMaxNow(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.maxNow.Store(clock)
	go s.flushLoop()
	logger.Info("kv store opened", "path", path, "applied_index", applied)
	return s, nil
}

// discardIfUnclean removes the store file at path unless its clean marker
// exists: after a crash its unsynced pages may be torn.
func discardIfUnclean(path string, logger *slog.Logger) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(path + cleanSuffix); err == nil {
		return nil
	}
	logger.Warn("state file was not closed cleanly; rebuilding it from the newest snapshot and the Raft log", "path", path)
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("kv: discarding unclean %s: %w", path, err)
	}
	return nil
}

// MarkClean marks the file at path (a closed store, for example one copied
// from a backup) as cleanly closed, so Open trusts it.
func MarkClean(path string) error {
	if err := os.WriteFile(path+cleanSuffix, nil, 0o600); err != nil {
		return fmt.Errorf("kv: marking %s clean: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// openDB opens the bbolt file at path, creates missing buckets and returns
// the stored applied index. Commits do not fsync; Close syncs.
func openDB(path string) (*bbolt.DB, uint64, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         openTimeout,
		InitialMmapSize: initialMmapSize,
		FreelistType:    bbolt.FreelistMapType,
		NoSync:          true,
		NoFreelistSync:  true,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("kv: open %s: %w", path, err)
	}
	var applied uint64
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketKV, bucketTTL, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if applied, err = readApplied(tx); err != nil {
			return err
		}
		return initHistory(tx, applied)
	})
	if err != nil {
		_ = db.Close()
		return nil, 0, fmt.Errorf("kv: open %s: %w", path, err)
	}
	return db, applied, nil
}

func readApplied(tx *bbolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, fmt.Errorf("bucket %s is missing", bucketMeta)
	}
	v := meta.Get(keyApplied)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("applied index is %d bytes; want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the file and wakes every WaitApplied. It waits for open
// snapshots to be released. Close is idempotent.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.db != nil {
			s.flush()
			err := s.db.Sync()
			if cerr := s.db.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = MarkClean(s.path)
			}
			if err != nil {
				s.closeErr = fmt.Errorf("kv: close %s: %w", s.path, err)
			}
			s.db = nil
		}
	})
	return s.closeErr
}

// AppliedIndex returns the last Raft index applied; reads see its state.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// setApplied publishes a new applied index and wakes waiters.
func (s *Store) setApplied(index uint64) {
	s.applied.Store(index)
	s.wake()
}

// wake wakes every WaitApplied and WaitCommitted to recheck its index.
func (s *Store) wake() {
	s.waitMu.Lock()
	close(s.advance)
	s.advance = make(chan struct{})
	s.waitMu.Unlock()
}

// WaitApplied blocks until AppliedIndex() >= index, ctx is done (the error
// wraps ctx.Err()) or the store is closed (ErrClosed).
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	return s.wait(ctx, index, &s.applied, "applied")
}

// WaitCommitted blocks until the file holds index (CommittedIndex() >=
// index), ctx is done or the store is closed. Applied state reaches the file
// within commitInterval, or sooner when a read needs it.
func (s *Store) WaitCommitted(ctx context.Context, index uint64) error {
	return s.wait(ctx, index, &s.committed, "committed")
}

// CommittedIndex returns the last Raft index committed to the file: what
// CommittedEventKeys sees.
func (s *Store) CommittedIndex() uint64 { return s.committed.Load() }

func (s *Store) wait(ctx context.Context, index uint64, v *atomic.Uint64, what string) error {
	for {
		s.waitMu.Lock()
		ch := s.advance
		s.waitMu.Unlock()
		cur := v.Load()
		if cur >= index {
			return nil
		}
		select {
		case <-ch:
		case <-s.closed:
			return fmt.Errorf("kv: wait for %s index %d: %w", what, index, ErrClosed)
		case <-ctx.Done():
			return fmt.Errorf("kv: wait for %s index %d (%s %d): %w", what, index, what, cur, ctx.Err())
		}
	}
}

// view runs fn in a read transaction of the current file, which holds at
// least everything applied before the call.
func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	s.flush()
	return s.db.View(fn)
}

// viewCommitted runs fn in a read transaction of the file as committed,
// which may lag the applied state (see WaitCommitted).
func (s *Store) viewCommitted(fn func(tx *bbolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

// Get returns the key at the current applied state, or a nil kv when it is
// absent or expired at nowMs; rev is the applied index at the read.
func (s *Store) Get(key []byte, nowMs int64) (kv *api.KeyValue, rev uint64, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		var err error
		if rev, err = readApplied(tx); err != nil {
			return err
		}
		kv, err = getLive(tx.Bucket(bucketKV), key, nowMs)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("kv: get %q: %w", key, err)
	}
	return kv, rev, nil
}

// BatchGet reads keys in one read transaction and returns one slot per key
// in request order (nil when absent or expired at nowMs), and the applied
// index at the read.
func (s *Store) BatchGet(keys [][]byte, nowMs int64) ([]*api.KeyValue, uint64, error) {
	out := make([]*api.KeyValue, len(keys))
	var rev uint64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		if rev, err = readApplied(tx); err != nil {
			return err
		}
		b := tx.Bucket(bucketKV)
		for i, k := range keys {
			if out[i], err = getLive(b, k, nowMs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("kv: batch get of %d keys: %w", len(keys), err)
	}
	return out, rev, nil
}

func getLive(b *bbolt.Bucket, key []byte, nowMs int64) (*api.KeyValue, error) {
	if len(key) == 0 {
		return nil, nil
	}
	raw := b.Get(key)
	if raw == nil {
		return nil, nil
	}
	r, err := decodeRecord(key, raw)
	if err != nil {
		return nil, err
	}
	if !r.live(nowMs) {
		return nil, nil
	}
	kv := r.toKV(key)
	return &kv, nil
}

// Scan returns live keys with prefix, strictly greater than after when after
// is non-nil, in ascending byte order, at most limit of them (limit <= 0
// means api.DefaultScanLimit; larger than api.MaxScanLimit is clamped to it).
// more is true exactly when another live key with the prefix exists after the
// last one returned. rev is the applied index at the read.
func (s *Store) Scan(prefix, after []byte, limit int, nowMs int64) (entries []api.KeyValue, more bool, rev uint64, err error) {
	limit = clampLimit(limit)
	err = s.view(func(tx *bbolt.Tx) error {
		var err error
		if rev, err = readApplied(tx); err != nil {
			return err
		}
		return scanLive(tx.Bucket(bucketKV), nil, prefix, after, nowMs, func(key []byte, r *record) (bool, error) {
			if len(entries) == limit {
				more = true
				return false, nil
			}
			entries = append(entries, r.toKV(key))
			return true, nil
		})
	})
	if err != nil {
		return nil, false, 0, fmt.Errorf("kv: scan prefix %q after %q: %w", prefix, after, err)
	}
	return entries, more, rev, nil
}

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return api.DefaultScanLimit
	case limit > api.MaxScanLimit:
		return api.MaxScanLimit
	}
	return limit
}

// Expired returns up to limit keys (limit <= 0 means api.DefaultScanLimit)
// whose expiry is at or before nowMs, earliest first, with their current
// ModRevision, for the leader's TTL sweeper to propose as an Expire command.
func (s *Store) Expired(nowMs int64, limit int) ([]ExpiredKey, error) {
	if limit <= 0 {
		limit = api.DefaultScanLimit
	}
	var out []ExpiredKey
	err := s.view(func(tx *bbolt.Tx) error {
		kvb := tx.Bucket(bucketKV)
		c := tx.Bucket(bucketTTL).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) <= 8 {
				return fmt.Errorf("ttl index entry is %d bytes; want more than 8", len(k))
			}
			exp := int64(binary.BigEndian.Uint64(k[:8]))
			if exp > nowMs {
				break
			}
			key := k[8:]
			raw := kvb.Get(key)
			if raw == nil {
				continue // cannot happen while the index is consistent
			}
			r, err := decodeRecord(key, raw)
			if err != nil {
				return err
			}
			if r.ExpiresAtMs != exp {
				continue // cannot happen while the index is consistent
			}
			out = append(out, ExpiredKey{Key: append([]byte(nil), key...), ModRevision: r.ModRevision})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kv: list keys expired at %d: %w", nowMs, err)
	}
	return out, nil
}

// Backup writes a consistent copy of the whole state (a bbolt file that Open
// and Restore accept) to w and returns the bytes written. Applies continue
// meanwhile; Restore and Close wait for it.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("kv: backup %s: %w", s.path, err)
	}
	return n, nil
}

// Snapshot starts a bbolt read transaction that pins the current state.
// Persist writes it as a bbolt file; Release ends the transaction. Applies may
// continue while the snapshot is open; Restore and Close wait for Release.
func (s *Store) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, fmt.Errorf("kv: snapshot: %w", ErrClosed)
	}
	s.flush()
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("kv: snapshot: begin read transaction: %w", err)
	}
	index, err := readApplied(tx)
	if err != nil {
		_ = tx.Rollback()
		return nil, fmt.Errorf("kv: snapshot: %w", err)
	}
	return &snapshot{tx: tx, index: index, logger: s.logger}, nil
}

// snapshot is a raft.FSMSnapshot over one bbolt read transaction. Raft calls
// Persist at most once and then Release, from one goroutine.
type snapshot struct {
	tx     *bbolt.Tx
	index  uint64
	logger *slog.Logger
	once   sync.Once
}

// Persist writes the pinned state to sink and closes it, or cancels it on error.
func (p *snapshot) Persist(sink raft.SnapshotSink) error {
	n, err := p.tx.WriteTo(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("kv: persist snapshot at index %d: %w", p.index, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("kv: persist snapshot at index %d: close sink: %w", p.index, err)
	}
	p.logger.Info("kv snapshot persisted", "applied_index", p.index, "bytes", n)
	return nil
}

// Release ends the read transaction; it is idempotent.
func (p *snapshot) Release() {
	p.once.Do(func() { _ = p.tx.Rollback() })
}

// Restore replaces the whole state with the snapshot in rc (a bbolt file as
// written by Persist or Backup) and closes rc. The snapshot is written to a
// temporary file beside the store, synced and checked before it replaces the
// store file under the exclusive lock; reads wait meanwhile. On error before
// the swap the old state is kept.
func (s *Store) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".restore-*")
	if err != nil {
		return fmt.Errorf("kv: restore: create temporary file: %w", err)
	}
	tmpPath := tmp.Name()
	swapped := false
	defer func() {
		if !swapped {
			_ = os.Remove(tmpPath)
		}
	}()
	n, err := io.Copy(tmp, rc)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kv: restore: write %s: %w", tmpPath, err)
	}
	// Check that the snapshot opens as a store before discarding ours.
	db, index, err := openDB(tmpPath)
	if err != nil {
		return fmt.Errorf("kv: restore: snapshot of %d bytes is not a store: %w", n, err)
	}
	if err := errors.Join(db.Sync(), db.Close()); err != nil {
		return fmt.Errorf("kv: restore: close %s: %w", tmpPath, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return fmt.Errorf("kv: restore: %w", ErrClosed)
	}
	s.discardPending()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("kv: restore: close %s: %w", s.path, err)
	}
	s.db = nil
	if err := os.Rename(tmpPath, s.path); err != nil {
		// Keep serving the old state if it still opens.
		if old, oldIndex, oerr := openDB(s.path); oerr == nil {
			s.db = old
			s.committed.Store(oldIndex)
			s.setApplied(oldIndex)
		}
		return fmt.Errorf("kv: restore: replace %s: %w", s.path, err)
	}
	swapped = true
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		// The rename is done; a crash may still undo it, which only means
		// Raft restores the snapshot again.
		s.logger.Warn("kv restore: directory sync failed", "error", err)
	}
	db, index, err = openDB(s.path)
	if err == nil {
		var clock int64
		if clock, err = readMaxNow(db); err != nil {
			_ = db.Close()
		} else {
			s.maxNow.Store(clock)
		}
	}
	if err != nil {
		return fmt.Errorf("kv: restore: reopen: %w", err)
	}
	s.db = db
	s.committed.Store(index)
	s.setApplied(index)
	s.logger.Info("kv store restored from snapshot", "applied_index", index, "bytes", n)
	return nil
}

// discardPending rolls back the pending write transaction: Restore replaces
// the state it holds. The caller holds s.mu exclusively.
func (s *Store) discardPending() {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if s.wtx != nil {
		_ = s.wtx.Rollback()
		s.wtx = nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// scanLive calls fn, in ascending key order, for every live key (at nowMs)
// with prefix and strictly greater than after (when after is non-nil), as
// seen through writes (pending writes of a transaction, nil value = deleted)
// over bucket b, until fn returns false or an error. The key passed to fn is
// valid only during the call.
func scanLive(b *bbolt.Bucket, writes map[string]*record, prefix, after []byte, nowMs int64, fn func(key []byte, r *record) (bool, error)) error {
	var pending []string
	for k := range writes {
		if bytes.HasPrefix([]byte(k), prefix) && (after == nil || k > string(after)) {
			pending = append(pending, k)
		}
	}
	slices.Sort(pending)

	start := prefix
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		start = after
	}
	c := b.Cursor()
	k, v := c.Seek(start)
	if after != nil && k != nil && bytes.Equal(k, after) {
		k, v = c.Next()
	}
	for {
		inBucket := k != nil && bytes.HasPrefix(k, prefix)
		if !inBucket && len(pending) == 0 {
			return nil
		}
		var key []byte
		var r *record
		cmp := 1 // >0: take pending first
		if inBucket && len(pending) > 0 {
			cmp = bytes.Compare(k, []byte(pending[0]))
		} else if inBucket {
			cmp = -1
		}
		switch {
		case cmp < 0:
			dec, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			key, r = k, dec
			k, v = c.Next()
		case cmp == 0:
			key, r = []byte(pending[0]), writes[pending[0]]
			pending = pending[1:]
			k, v = c.Next()
		default:
			key, r = []byte(pending[0]), writes[pending[0]]
			pending = pending[1:]
		}
		if r == nil || !r.live(nowMs) {
			continue
		}
		cont, err := fn(key, r)
		if err != nil || !cont {
			return err
		}
	}
}
