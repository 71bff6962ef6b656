package kv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

func openStore(t testing.TB) *Store {
	t.Helper()
	return openStoreAt(t, filepath.Join(t.TempDir(), "kv.db"))
}

func openStoreAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func cmdLog(t testing.TB, index uint64, c *Command) *raft.Log {
	t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatalf("EncodeCommand: %v", err)
	}
	return &raft.Log{Type: raft.LogCommand, Index: index, Term: 1, Data: b}
}

func txnLog(t testing.TB, index uint64, nowMs int64, txn *api.TxnRequest) *raft.Log {
	t.Helper()
	return cmdLog(t, index, &Command{NowMs: nowMs, Txn: txn})
}

// applyOne applies one log and returns its *ApplyResult.
func applyOne(t testing.TB, s *Store, l *raft.Log) *ApplyResult {
	t.Helper()
	got := s.Apply(l)
	res, ok := got.(*ApplyResult)
	if !ok {
		t.Fatalf("Apply(index %d) = %#v; want *ApplyResult", l.Index, got)
	}
	return res
}

// mustTxn applies a txn and fails the test on Err.
func mustTxn(t testing.TB, s *Store, index uint64, nowMs int64, txn *api.TxnRequest) *api.TxnResponse {
	t.Helper()
	res := applyOne(t, s, txnLog(t, index, nowMs, txn))
	if res.Err != nil {
		t.Fatalf("txn at index %d: %v", index, res.Err)
	}
	if res.Txn == nil {
		t.Fatalf("txn at index %d: nil response", index)
	}
	return res.Txn
}

func putOp(key, value string) api.TxnOp {
	return api.TxnOp{Kind: api.TxnPut, Key: []byte(key), Value: []byte(value)}
}

func putTTL(key, value string, ttlMs int64) api.TxnOp {
	op := putOp(key, value)
	op.TTLMs = ttlMs
	return op
}

func delOp(key string) api.TxnOp { return api.TxnOp{Kind: api.TxnDelete, Key: []byte(key)} }

func getOp(key string) api.TxnOp { return api.TxnOp{Kind: api.TxnGet, Key: []byte(key)} }

func addOp(key string, delta int64) api.TxnOp {
	return api.TxnOp{Kind: api.TxnAdd, Key: []byte(key), Delta: delta}
}

func ops(o ...api.TxnOp) *api.TxnRequest { return &api.TxnRequest{Success: o} }

func mustGet(t testing.TB, s *Store, key string, nowMs int64) *api.KeyValue {
	t.Helper()
	kv, _, err := s.Get([]byte(key), nowMs)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return kv
}

// wantKV checks a key's value, version and revisions.
func wantKV(t testing.TB, got *api.KeyValue, value string, version int64, create, mod uint64) {
	t.Helper()
	if got == nil {
		t.Fatalf("key absent; want value %q version %d", value, version)
	}
	if string(got.Value) != value || got.Version != version || got.CreateRevision != create || got.ModRevision != mod {
		t.Fatalf("got %q value %q v%d create %d mod %d; want value %q v%d create %d mod %d",
			got.Key, got.Value, got.Version, got.CreateRevision, got.ModRevision, value, version, create, mod)
	}
}

func wantCode(t testing.TB, err error, code api.Code) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("error = %v; want an *api.Error with code %s", err, code)
	}
}

// dump returns every bucket of the state s holds, through Backup, as
// bucket → key → value.
// commitNow commits what the store has applied, as a read needing it would.
func commitNow(s *Store) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.flush()
}

func dump(t testing.TB, s *Store) map[string]map[string]string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return dumpBytes(t, buf.Bytes())
}

func dumpBytes(t testing.TB, file []byte) map[string]map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dump.db")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer db.Close()
	out := map[string]map[string]string{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("read backup: %v", err)
	}
	return out
}

func diffDumps(a, b map[string]map[string]string) error {
	for name, ma := range a {
		mb, ok := b[name]
		if !ok {
			return fmt.Errorf("bucket %q missing on the right", name)
		}
		for k, va := range ma {
			vb, ok := mb[k]
			if !ok {
				return fmt.Errorf("bucket %q key %q missing on the right", name, k)
			}
			if va != vb {
				return fmt.Errorf("bucket %q key %q: %x != %x", name, k, va, vb)
			}
		}
		for k := range mb {
			if _, ok := ma[k]; !ok {
				return fmt.Errorf("bucket %q key %q missing on the left", name, k)
			}
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			return fmt.Errorf("bucket %q missing on the left", name)
		}
	}
	return nil
}

// checkTTLIndex verifies that the TTL bucket has exactly one entry per
// record with an expiry.
func checkTTLIndex(t testing.TB, s *Store) {
	t.Helper()
	d := dump(t, s)
	want := map[string]bool{}
	for k, v := range d["kv"] {
		r, err := decodeRecord([]byte(k), []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		if r.ExpiresAtMs != 0 {
			want[string(ttlKey(r.ExpiresAtMs, []byte(k)))] = true
		}
	}
	if len(want) != len(d["ttl"]) {
		t.Fatalf("ttl index has %d entries; want %d", len(d["ttl"]), len(want))
	}
	for k := range d["ttl"] {
		if !want[k] {
			t.Fatalf("stray ttl index entry %x", k)
		}
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Close() error  { m.closed = true; return nil }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)
