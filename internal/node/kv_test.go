package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/node"
)

func TestKVOperationsSingleNode(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	c := cl.Client()
	ctx := ctxT(t)

	rev1 := put(t, c, "a", "1")
	rev2 := put(t, c, "a", "2")
	kv := get(t, c, "a", "")
	if kv.Version != 2 || kv.CreateRevision != rev1 || kv.ModRevision != rev2 {
		t.Fatalf("a = %+v; want version 2, create %d, mod %d", kv, rev1, rev2)
	}
	if d, err := c.Delete(ctx, &api.DeleteRequest{Key: []byte("a")}); err != nil || !d.Existed {
		t.Fatalf("delete existing = %+v, %v", d, err)
	}
	if d, err := c.Delete(ctx, &api.DeleteRequest{Key: []byte("a")}); err != nil || d.Existed {
		t.Fatalf("delete missing = %+v, %v", d, err)
	}
	rev3 := put(t, c, "a", "3")
	if kv := get(t, c, "a", ""); kv.Version != 1 || kv.CreateRevision != rev3 {
		t.Fatalf("recreated a = %+v; want version 1 created at %d", kv, rev3)
	}

	// CAS: create-if-absent, then expected value; conflicts report the actual key.
	if r, err := c.CAS(ctx, &api.CASRequest{Key: []byte("c"), MustNotExist: true, NewValue: []byte("x")}); err != nil || !r.Succeeded {
		t.Fatalf("cas create = %+v, %v", r, err)
	}
	if r, err := c.CAS(ctx, &api.CASRequest{Key: []byte("c"), MustNotExist: true, NewValue: []byte("y")}); err != nil || r.Succeeded || string(r.Actual.Value) != "x" {
		t.Fatalf("second cas create = %+v, %v; want conflict showing x", r, err)
	}
	if r, err := c.CAS(ctx, &api.CASRequest{Key: []byte("missing"), Expected: []byte(""), NewValue: []byte("y")}); err != nil || r.Succeeded || r.Actual != nil {
		t.Fatalf("cas on missing key = %+v, %v; want conflict with nil actual", r, err)
	}
	if r, err := c.CAD(ctx, &api.CADRequest{Key: []byte("c"), Expected: []byte("wrong")}); err != nil || r.Succeeded {
		t.Fatalf("cad wrong = %+v, %v", r, err)
	}
	if _, err := c.CAD(ctx, &api.CADRequest{Key: []byte("c")}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("cad without expected: %v, want INVALID_ARGUMENT", err)
	}
	if r, err := c.CAD(ctx, &api.CADRequest{Key: []byte("c"), Expected: []byte("x")}); err != nil || !r.Succeeded {
		t.Fatalf("cad right = %+v, %v", r, err)
	}

	// Conditional batch: all-or-nothing, first failing index reported.
	r, err := c.ConditionalBatch(ctx, &api.ConditionalBatchRequest{
		Conditions: []api.Condition{{Kind: api.CondKeyExists, Key: []byte("a")}, {Kind: api.CondValueEquals, Key: []byte("a"), Expected: []byte("nope")}},
		Ops:        []api.WriteOp{{Kind: api.WriteSet, Key: []byte("cb"), Value: []byte("1")}, {Kind: api.WriteDelete, Key: []byte("a")}},
	})
	if err != nil || r.ConditionsMet || r.FailedConditionIndex != 1 || r.OperationsApplied != 0 {
		t.Fatalf("failing conditional batch = %+v, %v", r, err)
	}
	if get(t, c, "cb", "") != nil || get(t, c, "a", "") == nil {
		t.Fatalf("failing conditional batch changed state")
	}
	r, err = c.ConditionalBatch(ctx, &api.ConditionalBatchRequest{
		Conditions: []api.Condition{{Kind: api.CondValueEquals, Key: []byte("a"), Expected: []byte("3")}, {Kind: api.CondKeyNotExists, Key: []byte("cb")}},
		Ops:        []api.WriteOp{{Kind: api.WriteSet, Key: []byte("cb"), Value: []byte("1")}, {Kind: api.WriteDelete, Key: []byte("a")}},
	})
	if err != nil || !r.ConditionsMet || r.FailedConditionIndex != -1 || r.OperationsApplied != 2 {
		t.Fatalf("conditional batch = %+v, %v", r, err)
	}
	if get(t, c, "cb", "") == nil || get(t, c, "a", "") != nil {
		t.Fatalf("conditional batch did not apply both ops (set and delete)")
	}

	// Transactions with version compares and atomic add.
	txn, err := c.Txn(ctx, &api.TxnRequest{
		Compares: []api.Compare{{Key: []byte("cb"), Target: api.TargetVersion, Result: api.Equal, Number: 1}},
		Success:  []api.TxnOp{{Kind: api.TxnAdd, Key: []byte("n"), Delta: 5}, {Kind: api.TxnGet, Key: []byte("cb")}},
	})
	if err != nil || !txn.Succeeded || string(txn.Results[0].KVs[0].Value) != "5" || string(txn.Results[1].KVs[0].Value) != "1" {
		t.Fatalf("txn = %+v, %v", txn, err)
	}
}

func TestKVLimitsChangeNothing(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	c := cl.Client()
	ctx := ctxT(t)
	before := put(t, c, "base", "v")
	cases := []struct {
		name string
		call func() error
	}{
		{"key too large", func() error {
			_, err := c.Put(ctx, &api.PutRequest{Key: bytes.Repeat([]byte("k"), api.MaxKeySize+1), Value: []byte("v")})
			return err
		}},
		{"empty key", func() error { _, err := c.Put(ctx, &api.PutRequest{Value: []byte("v")}); return err }},
		{"value too large", func() error {
			_, err := c.Put(ctx, &api.PutRequest{Key: []byte("k"), Value: make([]byte, api.MaxValueSize+1)})
			return err
		}},
		{"batch too large", func() error {
			ops := make([]api.WriteOp, api.MaxBatchOps+1)
			for i := range ops {
				ops[i] = api.WriteOp{Kind: api.WriteSet, Key: []byte(fmt.Sprint(i)), Value: []byte("v")}
			}
			_, err := c.BatchWrite(ctx, &api.BatchWriteRequest{Ops: ops})
			return err
		}},
		{"batch with one bad key", func() error {
			_, err := c.BatchWrite(ctx, &api.BatchWriteRequest{Ops: []api.WriteOp{{Kind: api.WriteSet, Key: []byte("ok"), Value: []byte("v")}, {Kind: api.WriteSet, Value: []byte("v")}}})
			return err
		}},
		{"scan limit too large", func() error {
			_, err := c.Scan(ctx, &api.ScanRequest{Limit: api.MaxScanLimit + 1})
			return err
		}},
		{"bad token", func() error {
			_, err := c.Scan(ctx, &api.ScanRequest{Prefix: []byte("x"), ContinuationToken: "!!!"})
			return err
		}},
		{"bad consistency", func() error {
			_, err := c.Get(ctx, &api.GetRequest{Key: []byte("k"), Consistency: "sometimes"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, api.ErrInvalidArgument) {
				t.Fatalf("err = %v, want INVALID_ARGUMENT", err)
			}
		})
	}
	s, err := c.Scan(ctx, &api.ScanRequest{})
	if err != nil || len(s.Entries) != 1 || s.Revision != before {
		t.Fatalf("after rejected requests: %d keys at revision %d (want 1 at %d), %v", len(s.Entries), s.Revision, before, err)
	}
}

func TestScanPagination(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	c := cl.Client()
	ctx := ctxT(t)
	const n = 1203
	for i := 0; i < n; i += 100 {
		var ops []api.WriteOp
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, api.WriteOp{Kind: api.WriteSet, Key: []byte(fmt.Sprintf("p/%05d", j)), Value: []byte("v")})
		}
		if _, err := c.BatchWrite(ctx, &api.BatchWriteRequest{Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	put(t, c, "q", "outside the prefix")
	for _, limit := range []int{0, 1, 7, 1000, 1203, 10000} {
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			r, err := c.Scan(ctx, &api.ScanRequest{Prefix: []byte("p/"), Limit: limit, ContinuationToken: token})
			if err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			for _, e := range r.Entries {
				got = append(got, string(e.Key))
			}
			if r.ContinuationToken == "" {
				break
			}
			if pages > n {
				t.Fatalf("limit %d: pagination does not end", limit)
			}
			token = r.ContinuationToken
		}
		if len(got) != n {
			t.Fatalf("limit %d: %d keys, want %d", limit, len(got), n)
		}
		for i, k := range got {
			if k != fmt.Sprintf("p/%05d", i) {
				t.Fatalf("limit %d: key %d is %s (order, gap or duplicate)", limit, i, k)
			}
		}
	}
}

func TestTTLExpiresOnEveryReplica(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	c := cl.Client()
	if _, err := c.Put(ctxT(t), &api.PutRequest{Key: []byte("ttl"), Value: []byte("v"), TTLMs: 300}); err != nil {
		t.Fatal(err)
	}
	put(t, c, "keep", "v")
	for i := 1; i <= 3; i++ {
		n := cl.Members[i-1].Node
		cl.Eventually(10*time.Second, func() error {
			// the record itself is gone (deleted by a replicated command),
			// not just hidden by the read-time check
			if kvs, _, err := n.Store().BatchGet([][]byte{[]byte("ttl")}, 0); err != nil || kvs[0] != nil {
				return fmt.Errorf("node %d still stores ttl key: %v", i, err)
			}
			return nil
		})
		if kv, _, _ := n.Store().Get([]byte("keep"), 0); kv == nil {
			t.Fatalf("node %d lost a key without TTL", i)
		}
	}
}

func TestJoinWithTicket(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	put(t, cl.Client(), "before-join", "v")
	cfg := node.DefaultConfig()
	cfg.NodeID, cfg.Cookie, cfg.DataDir, cfg.Bind = 2, cl.Config(1).Cookie, t.TempDir(), "127.0.0.1:0"
	cfg.Join = cl.Ticket()
	n2, err := node.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	cl.Eventually(30*time.Second, func() error {
		if m := n2.Raft().Metrics(); !m.IsVoter {
			return fmt.Errorf("node 2 is %s, not yet a voter", m.State)
		}
		return nil
	})
	if kv, _, _ := n2.Store().Get([]byte("before-join"), 0); kv == nil {
		t.Fatalf("joined node lacks data written before it joined")
	}
}

func TestRestoreFromBackup(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	c := cl.Client()
	rev := put(t, c, "saved", "v1")
	file := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Backup(ctxT(t), f); err != nil {
		t.Fatalf("backup: %v", err)
	}
	f.Close()
	put(t, c, "after-backup", "v")

	cfg := node.DefaultConfig()
	cfg.NodeID, cfg.Cookie, cfg.DataDir, cfg.Bind = 1, "another-cluster", t.TempDir(), "127.0.0.1:0"
	cfg.RestoreFrom = file
	n, err := node.Start(cfg, nil)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	defer n.Close()
	rc, err := client.New(client.Config{Ticket: n.Ticket(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	kv := get(t, rc, "saved", api.Linearizable)
	if kv == nil || string(kv.Value) != "v1" || kv.ModRevision != rev {
		t.Fatalf("restored saved = %+v, want v1 at rev %d", kv, rev)
	}
	if get(t, rc, "after-backup", api.Linearizable) != nil {
		t.Fatalf("restored cluster has a key written after the backup")
	}
	// new writes continue the revision sequence
	if r := put(t, rc, "new", "v"); r <= rev {
		t.Fatalf("new write at revision %d, not after restored %d", r, rev)
	}
}

func TestReservedPrefixesAreReadOnlyForKV(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	c := cl.Client()
	ctx := ctxT(t)
	for _, key := range []string{"__coord:lock:x", "_system:secret"} {
		if _, err := c.Put(ctx, &api.PutRequest{Key: []byte(key), Value: []byte("v")}); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("put %s: %v, want INVALID_ARGUMENT", key, err)
		}
		if _, err := c.Get(ctx, &api.GetRequest{Key: []byte(key)}); err != nil {
			t.Errorf("get %s: %v, want a plain read to work", key, err)
		}
	}
	// a delete_range over a prefix that covers reserved keys is refused too
	_, err := c.Txn(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnDeleteRange, Key: []byte("_")}}})
	if !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("delete_range _: %v, want INVALID_ARGUMENT", err)
	}
}
