package kv

import (
	"fmt"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/hashicorp/raft"
)

func TestPutGetVersionsAndRevisions(t *testing.T) {
	s := openStore(t)
	resp := mustTxn(t, s, 1, 0, ops(putOp("mykey", "hello-world")))
	if !resp.Succeeded || resp.FailedCompare != -1 || resp.Revision != 1 {
		t.Fatalf("put response = %+v; want succeeded, failed compare -1, revision 1", resp)
	}
	if len(resp.Results) != 1 || resp.Results[0].Kind != api.TxnPut {
		t.Fatalf("put results = %+v; want one put result", resp.Results)
	}
	wantKV(t, mustGet(t, s, "mykey", 0), "hello-world", 1, 1, 1)

	mustTxn(t, s, 2, 0, ops(putOp("other", "x")))
	mustTxn(t, s, 3, 0, ops(putOp("mykey", "updated-value")))
	kv, rev, err := s.Get([]byte("mykey"), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantKV(t, kv, "updated-value", 2, 1, 3)
	if rev != 3 || s.AppliedIndex() != 3 {
		t.Fatalf("rev = %d, AppliedIndex = %d; want 3, 3", rev, s.AppliedIndex())
	}
	if kv := mustGet(t, s, "never-written", 0); kv != nil {
		t.Fatalf("Get(never-written) = %+v; want nil", kv)
	}

	// An empty value is a value: the key exists.
	mustTxn(t, s, 4, 0, ops(putOp("empty", "")))
	kv = mustGet(t, s, "empty", 0)
	if kv == nil || kv.Value == nil || len(kv.Value) != 0 {
		t.Fatalf("Get(empty) = %+v; want an existing key with an empty, non-nil value", kv)
	}
	// Binary values round-trip.
	bin := string([]byte{0, 1, '\n', '\t', 0xff})
	mustTxn(t, s, 5, 0, ops(putOp("bin", bin)))
	wantKV(t, mustGet(t, s, "bin", 0), bin, 1, 5, 5)
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name        string
		setup       bool
		wantDeleted int64
	}{
		{"existing key", true, 1},
		{"missing key", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			idx := uint64(1)
			if tt.setup {
				mustTxn(t, s, idx, 0, ops(putOp("k", "v")))
				idx++
			}
			resp := mustTxn(t, s, idx, 0, ops(delOp("k")))
			if got := resp.Results[0].Deleted; got != tt.wantDeleted {
				t.Fatalf("Deleted = %d; want %d", got, tt.wantDeleted)
			}
			if kv := mustGet(t, s, "k", 0); kv != nil {
				t.Fatalf("Get after delete = %+v; want nil", kv)
			}
		})
	}
}

func TestDeleteThenRecreateRestartsVersion(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 0, ops(putOp("k", "a")))
	mustTxn(t, s, 2, 0, ops(putOp("k", "b")))
	mustTxn(t, s, 3, 0, ops(delOp("k")))
	mustTxn(t, s, 4, 0, ops(putOp("k", "c")))
	wantKV(t, mustGet(t, s, "k", 0), "c", 1, 4, 4)
}

func TestCompares(t *testing.T) {
	// State before each case: "k" = "v" written at index 1 then 2 (version 2,
	// create 1, mod 2); "n" is missing.
	cmp := func(key string, target api.CompareTarget, res api.CompareResult, value string, number int64) api.Compare {
		return api.Compare{Key: []byte(key), Target: target, Result: res, Value: []byte(value), Number: number}
	}
	tests := []struct {
		name     string
		compares []api.Compare
		wantOK   bool
		wantFail int
	}{
		{"no compares", nil, true, -1},
		{"value equal", []api.Compare{cmp("k", api.TargetValue, api.Equal, "v", 0)}, true, -1},
		{"value equal wrong", []api.Compare{cmp("k", api.TargetValue, api.Equal, "w", 0)}, false, 0},
		{"value not equal", []api.Compare{cmp("k", api.TargetValue, api.NotEqual, "w", 0)}, true, -1},
		{"value less", []api.Compare{cmp("k", api.TargetValue, api.Less, "w", 0)}, true, -1},
		{"value greater", []api.Compare{cmp("k", api.TargetValue, api.Greater, "u", 0)}, true, -1},
		{"missing value equal", []api.Compare{cmp("n", api.TargetValue, api.Equal, "", 0)}, false, 0},
		{"missing value not equal never holds", []api.Compare{cmp("n", api.TargetValue, api.NotEqual, "x", 0)}, false, 0},
		{"missing version 0 (create if absent)", []api.Compare{cmp("n", api.TargetVersion, api.Equal, "", 0)}, true, -1},
		{"existing version 0", []api.Compare{cmp("k", api.TargetVersion, api.Equal, "", 0)}, false, 0},
		{"version equal", []api.Compare{cmp("k", api.TargetVersion, api.Equal, "", 2)}, true, -1},
		{"version greater", []api.Compare{cmp("k", api.TargetVersion, api.Greater, "", 1)}, true, -1},
		{"create revision", []api.Compare{cmp("k", api.TargetCreateRevision, api.Equal, "", 1)}, true, -1},
		{"mod revision", []api.Compare{cmp("k", api.TargetModRevision, api.Equal, "", 2)}, true, -1},
		{"mod revision less", []api.Compare{cmp("k", api.TargetModRevision, api.Less, "", 2)}, false, 0},
		{"revision greater than negative", []api.Compare{cmp("k", api.TargetModRevision, api.Greater, "", -1)}, true, -1},
		{"missing mod revision 0", []api.Compare{cmp("n", api.TargetModRevision, api.Equal, "", 0)}, true, -1},
		{"second of three fails", []api.Compare{
			cmp("k", api.TargetValue, api.Equal, "v", 0),
			cmp("n", api.TargetVersion, api.NotEqual, "", 0),
			cmp("k", api.TargetValue, api.Equal, "nope", 0),
		}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			mustTxn(t, s, 1, 0, ops(putOp("k", "v")))
			mustTxn(t, s, 2, 0, ops(putOp("k", "v")))
			resp := mustTxn(t, s, 3, 0, &api.TxnRequest{
				Compares: tt.compares,
				Success:  []api.TxnOp{putOp("ok", "1")},
				Failure:  []api.TxnOp{getOp("k")},
			})
			if resp.Succeeded != tt.wantOK || resp.FailedCompare != tt.wantFail {
				t.Fatalf("Succeeded, FailedCompare = %v, %d; want %v, %d", resp.Succeeded, resp.FailedCompare, tt.wantOK, tt.wantFail)
			}
			if len(resp.Results) != 1 {
				t.Fatalf("results = %+v; want 1", resp.Results)
			}
			if tt.wantOK {
				wantKV(t, mustGet(t, s, "ok", 0), "1", 1, 3, 3)
				return
			}
			if kv := mustGet(t, s, "ok", 0); kv != nil {
				t.Fatalf("failure branch ran but success put applied: %+v", kv)
			}
			r := resp.Results[0]
			if r.Kind != api.TxnGet || len(r.KVs) != 1 {
				t.Fatalf("failure get result = %+v; want one kv", r)
			}
			wantKV(t, &r.KVs[0], "v", 2, 1, 2)
		})
	}
}

func TestCASScenario(t *testing.T) {
	s := openStore(t)
	createIfAbsent := &api.TxnRequest{
		Compares: []api.Compare{{Key: []byte("c"), Target: api.TargetVersion, Result: api.Equal}},
		Success:  []api.TxnOp{putOp("c", "initial")},
		Failure:  []api.TxnOp{getOp("c")},
	}
	if r := mustTxn(t, s, 1, 0, createIfAbsent); !r.Succeeded {
		t.Fatal("create-if-absent on a new key failed")
	}
	if r := mustTxn(t, s, 2, 0, createIfAbsent); r.Succeeded {
		t.Fatal("second create-if-absent succeeded")
	}
	cas := func(expected, newValue string) *api.TxnRequest {
		return &api.TxnRequest{
			Compares: []api.Compare{{Key: []byte("c"), Target: api.TargetValue, Result: api.Equal, Value: []byte(expected)}},
			Success:  []api.TxnOp{putOp("c", newValue)},
			Failure:  []api.TxnOp{getOp("c")},
		}
	}
	if r := mustTxn(t, s, 3, 0, cas("initial", "updated")); !r.Succeeded {
		t.Fatal("cas with the right expected value failed")
	}
	r := mustTxn(t, s, 4, 0, cas("wrong", "nope"))
	if r.Succeeded || string(r.Results[0].KVs[0].Value) != "updated" {
		t.Fatalf("cas with a wrong expected value = %+v; want failure showing %q", r, "updated")
	}
	wantKV(t, mustGet(t, s, "c", 0), "updated", 2, 1, 3)
}

func TestConditionalFailureAppliesNothing(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 0, ops(putOp("a", "1")))
	before := dump(t, s)["kv"]
	resp := mustTxn(t, s, 2, 0, &api.TxnRequest{
		Compares: []api.Compare{
			{Key: []byte("a"), Target: api.TargetValue, Result: api.Equal, Value: []byte("1")},
			{Key: []byte("b"), Target: api.TargetVersion, Result: api.Greater, Number: 0},
		},
		Success: []api.TxnOp{putOp("a", "2"), delOp("a"), putOp("c", "3")},
	})
	if resp.Succeeded || resp.FailedCompare != 1 || len(resp.Results) != 0 {
		t.Fatalf("response = %+v; want failure at compare 1 with no results", resp)
	}
	after := dump(t, s)["kv"]
	if err := diffDumps(map[string]map[string]string{"kv": before}, map[string]map[string]string{"kv": after}); err != nil {
		t.Fatalf("state changed: %v", err)
	}
	if s.AppliedIndex() != 2 {
		t.Fatalf("AppliedIndex = %d; want 2", s.AppliedIndex())
	}
}

func TestAtomicRollback(t *testing.T) {
	tests := []struct {
		name    string
		counter string
		delta   int64
	}{
		{"not a number", "abc", 1},
		{"empty value", "", 1},
		{"overflow", "9223372036854775807", 1},
		{"underflow", "-9223372036854775808", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			mustTxn(t, s, 1, 0, ops(putOp("counter", tt.counter), putOp("keep", "old")))
			before := dump(t, s)["kv"]
			res := applyOne(t, s, txnLog(t, 2, 0, ops(
				putOp("x", "1"),
				putOp("keep", "new"),
				delOp("keep"),
				addOp("counter", tt.delta),
				putOp("y", "2"),
			)))
			wantCode(t, res.Err, api.CodeInvalidArgument)
			if res.Txn != nil {
				t.Fatalf("Txn = %+v; want nil on error", res.Txn)
			}
			if err := diffDumps(map[string]map[string]string{"kv": before}, map[string]map[string]string{"kv": dump(t, s)["kv"]}); err != nil {
				t.Fatalf("state changed: %v", err)
			}
			if s.AppliedIndex() != 2 {
				t.Fatalf("AppliedIndex = %d; want 2", s.AppliedIndex())
			}
		})
	}
}

func TestAdd(t *testing.T) {
	s := openStore(t)
	resp := mustTxn(t, s, 1, 0, ops(addOp("n", 5)))
	wantKV(t, &resp.Results[0].KVs[0], "5", 1, 1, 1)
	resp = mustTxn(t, s, 2, 0, ops(addOp("n", -7), addOp("n", 0)))
	wantKV(t, &resp.Results[0].KVs[0], "-2", 2, 1, 2)
	wantKV(t, &resp.Results[1].KVs[0], "-2", 3, 1, 2)
	// Add sees an earlier put of the same txn.
	resp = mustTxn(t, s, 3, 0, ops(putOp("m", "40"), addOp("m", 2), getOp("m")))
	wantKV(t, &resp.Results[2].KVs[0], "42", 2, 3, 3)
	wantKV(t, mustGet(t, s, "m", 0), "42", 2, 3, 3)
}

func TestOpsSeeEarlierOps(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 0, ops(putOp("p/a", "1"), putOp("p/b", "2"), putOp("p/c", "3"), putOp("q", "4")))
	resp := mustTxn(t, s, 2, 0, ops(
		delOp("p/b"),
		putOp("p/d", "5"),
		api.TxnOp{Kind: api.TxnRange, Key: []byte("p/")},
		api.TxnOp{Kind: api.TxnDeleteRange, Key: []byte("p/")},
		api.TxnOp{Kind: api.TxnRange, Key: []byte("")},
		getOp("p/a"),
		delOp("p/a"),
	))
	var keys []string
	for _, kv := range resp.Results[2].KVs {
		keys = append(keys, string(kv.Key))
	}
	if fmt.Sprint(keys) != "[p/a p/c p/d]" {
		t.Fatalf("range in txn = %v; want [p/a p/c p/d]", keys)
	}
	if got := resp.Results[3].Deleted; got != 3 {
		t.Fatalf("delete_range Deleted = %d; want 3", got)
	}
	if r := resp.Results[4]; len(r.KVs) != 1 || string(r.KVs[0].Key) != "q" || r.More {
		t.Fatalf("range after delete_range = %+v; want only q", r)
	}
	if r := resp.Results[5]; len(r.KVs) != 0 {
		t.Fatalf("get after delete_range = %+v; want none", r)
	}
	if got := resp.Results[6].Deleted; got != 0 {
		t.Fatalf("delete after delete_range Deleted = %d; want 0", got)
	}
	entries, _, _, err := s.Scan(nil, nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || string(entries[0].Key) != "q" {
		t.Fatalf("scan after txn = %+v; want only q", entries)
	}
}

func TestRangeOpLimitAndMore(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 0, ops(putOp("r/1", ""), putOp("r/2", ""), putOp("r/3", "")))
	tests := []struct {
		limit    int
		wantN    int
		wantMore bool
	}{
		{0, 3, false}, {1, 1, true}, {2, 2, true}, {3, 3, false}, {4, 3, false},
	}
	idx := uint64(2)
	for _, tt := range tests {
		t.Run(fmt.Sprint("limit", tt.limit), func(t *testing.T) {
			resp := mustTxn(t, s, idx, 0, ops(api.TxnOp{Kind: api.TxnRange, Key: []byte("r/"), Limit: tt.limit}))
			idx++
			r := resp.Results[0]
			if len(r.KVs) != tt.wantN || r.More != tt.wantMore {
				t.Fatalf("range = %d keys, more %v; want %d, %v", len(r.KVs), r.More, tt.wantN, tt.wantMore)
			}
		})
	}
}

func TestTTL(t *testing.T) {
	s := openStore(t)
	const now = 10_000
	mustTxn(t, s, 1, now, ops(putTTL("t", "v", 1000), putOp("forever", "v")))
	kv := mustGet(t, s, "t", now+999)
	if kv == nil || kv.ExpiresAtMs != now+1000 {
		t.Fatalf("Get before expiry = %+v; want ExpiresAtMs %d", kv, now+1000)
	}
	if kv := mustGet(t, s, "t", now+1000); kv != nil {
		t.Fatalf("Get at expiry = %+v; want nil", kv)
	}
	if entries, _, _, _ := s.Scan(nil, nil, 0, now+1000); len(entries) != 1 || string(entries[0].Key) != "forever" {
		t.Fatalf("Scan at expiry = %+v; want only forever", entries)
	}
	kvs, _, err := s.BatchGet([][]byte{[]byte("t"), []byte("forever")}, now+1000)
	if err != nil || kvs[0] != nil || kvs[1] == nil {
		t.Fatalf("BatchGet at expiry = %+v, %v; want [nil, forever]", kvs, err)
	}
	checkTTLIndex(t, s)

	exp, err := s.Expired(now+999, 0)
	if err != nil || len(exp) != 0 {
		t.Fatalf("Expired before expiry = %+v, %v; want none", exp, err)
	}
	exp, err = s.Expired(now+1000, 0)
	if err != nil || len(exp) != 1 || string(exp[0].Key) != "t" || exp[0].ModRevision != 1 {
		t.Fatalf("Expired at expiry = %+v, %v; want [t@1]", exp, err)
	}

	// Compares use the command's clock: expired means absent.
	resp := mustTxn(t, s, 2, now+999, &api.TxnRequest{
		Compares: []api.Compare{{Key: []byte("t"), Target: api.TargetVersion, Result: api.Equal}},
	})
	if resp.Succeeded {
		t.Fatal("version = 0 held before expiry")
	}
	resp = mustTxn(t, s, 3, now+1000, &api.TxnRequest{
		Compares: []api.Compare{{Key: []byte("t"), Target: api.TargetVersion, Result: api.Equal}},
		Success:  []api.TxnOp{delOp("t")},
	})
	if !resp.Succeeded || resp.Results[0].Deleted != 0 {
		t.Fatalf("at expiry: %+v; want version = 0 to hold and delete to report 0", resp)
	}
	if d := dump(t, s); len(d["kv"]) != 1 || len(d["ttl"]) != 0 {
		t.Fatalf("after deleting the expired key: kv %d ttl %d entries; want 1, 0", len(d["kv"]), len(d["ttl"]))
	}

	// A put over an expired key starts a new life (state-machine time
	// never goes back, so these stamps follow the ones above).
	mustTxn(t, s, 4, now+1000, ops(putTTL("e", "1", 10)))
	mustTxn(t, s, 5, now+1020, ops(putOp("e", "2")))
	wantKV(t, mustGet(t, s, "e", now+1020), "2", 1, 5, 5)
	checkTTLIndex(t, s)
}

func TestExpireCommand(t *testing.T) {
	s := openStore(t)
	const now = 1_000
	mustTxn(t, s, 1, now, ops(putTTL("a", "1", 100), putTTL("b", "1", 100), putTTL("c", "1", 100), putTTL("later", "1", 5000)))
	exp, err := s.Expired(now+100, 0)
	if err != nil || len(exp) != 3 {
		t.Fatalf("Expired = %+v, %v; want a, b, c", exp, err)
	}
	if limited, _ := s.Expired(now+100, 2); len(limited) != 2 {
		t.Fatalf("Expired(limit 2) = %d keys; want 2", len(limited))
	}
	// Before the sweep commits, b is rewritten (new mod revision, new TTL) and
	// c is rewritten without a TTL.
	mustTxn(t, s, 2, now+100, ops(putTTL("b", "2", 100), putOp("c", "2")))
	res := applyOne(t, s, cmdLog(t, 3, &Command{NowMs: now + 100, Expire: append(exp, ExpiredKey{Key: []byte("missing"), ModRevision: 1})}))
	if res.Err != nil || res.Expired != 1 {
		t.Fatalf("Expire result = %+v; want 1 expired", res)
	}
	if kv := mustGet(t, s, "b", now+100); kv == nil || string(kv.Value) != "2" {
		t.Fatalf("b = %+v; want rewritten value 2 kept", kv)
	}
	if kv := mustGet(t, s, "c", now+100000); kv == nil {
		t.Fatal("c was expired by a stale Expire")
	}
	// An Expire for the right revision that is not yet expired at the
	// command's clock does nothing.
	res = applyOne(t, s, cmdLog(t, 4, &Command{NowMs: now + 150, Expire: []ExpiredKey{{Key: []byte("b"), ModRevision: 2}}}))
	if res.Expired != 0 {
		t.Fatalf("early Expire removed %d keys; want 0", res.Expired)
	}
	res = applyOne(t, s, cmdLog(t, 5, &Command{NowMs: now + 200, Expire: []ExpiredKey{{Key: []byte("b"), ModRevision: 2}}}))
	if res.Expired != 1 {
		t.Fatalf("due Expire removed %d keys; want 1", res.Expired)
	}
	d := dump(t, s)
	if len(d["kv"]) != 2 { // c and later
		t.Fatalf("kv bucket has %d keys; want 2", len(d["kv"]))
	}
	checkTTLIndex(t, s)
}

func TestScan(t *testing.T) {
	s := openStore(t)
	var put []api.TxnOp
	for i := range 10 {
		put = append(put, putOp(fmt.Sprintf("scan:item:%03d", i), fmt.Sprint(i)))
	}
	put = append(put, putOp("other:1", ""), putOp("other:2", ""), putOp("scan:itez", ""))
	put = append(put, putTTL("scan:item:010", "expired", 10)) // expired at now=100
	mustTxn(t, s, 1, 0, ops(put...))
	const now = 100

	item := func(i ...int) []string {
		var out []string
		for _, n := range i {
			out = append(out, fmt.Sprintf("scan:item:%03d", n))
		}
		return out
	}
	tests := []struct {
		name     string
		prefix   string
		after    *string
		limit    int
		want     []string
		wantMore bool
	}{
		{"all with prefix", "scan:item:", nil, 0, item(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), false},
		{"limit 3", "scan:item:", nil, 3, item(0, 1, 2), true},
		{"limit 4", "scan:item:", nil, 4, item(0, 1, 2, 3), true},
		{"exactly limit left", "scan:item:", nil, 10, item(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), false},
		{"after, page 2", "scan:item:", ptr("scan:item:003"), 4, item(4, 5, 6, 7), true},
		{"after, exactly limit left", "scan:item:", ptr("scan:item:005"), 4, item(6, 7, 8, 9), false},
		{"after last", "scan:item:", ptr("scan:item:009"), 4, nil, false},
		{"after not a key", "scan:item:", ptr("scan:item:0055"), 2, item(6, 7), true},
		{"after before prefix", "scan:item:", ptr("a"), 2, item(0, 1), true},
		{"after beyond prefix", "scan:item:", ptr("scan:itez"), 2, nil, false},
		{"other prefix", "other:", nil, 0, []string{"other:1", "other:2"}, false},
		{"empty prefix", "", nil, 2, []string{"other:1", "other:2"}, true},
		{"no match", "zzz", nil, 0, nil, false},
		{"one left is expired", "scan:item:", ptr("scan:item:008"), 1, item(9), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var after []byte
			if tt.after != nil {
				after = []byte(*tt.after)
			}
			entries, more, rev, err := s.Scan([]byte(tt.prefix), after, tt.limit, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, string(e.Key))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || more != tt.wantMore {
				t.Fatalf("Scan = %v more %v; want %v more %v", got, more, tt.want, tt.wantMore)
			}
			if rev != 1 {
				t.Fatalf("rev = %d; want 1", rev)
			}
		})
	}

	// Paging to exhaustion yields every key once.
	var all []string
	var after []byte
	for {
		entries, more, _, err := s.Scan([]byte("scan:item:"), after, 3, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			all = append(all, string(e.Key))
		}
		if !more {
			break
		}
		after = entries[len(entries)-1].Key
	}
	if fmt.Sprint(all) != fmt.Sprint(item(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)) {
		t.Fatalf("paged scan = %v", all)
	}
}

func ptr(s string) *string { return &s }

func TestApplyBatchMixed(t *testing.T) {
	s := openStore(t)
	logs := []*raft.Log{
		txnLog(t, 1, 0, ops(putOp("a", "1"), putOp("n", "x"))),
		{Type: raft.LogConfiguration, Index: 2, Data: []byte("not ours")},
		txnLog(t, 3, 0, &api.TxnRequest{
			Compares: []api.Compare{{Key: []byte("a"), Target: api.TargetValue, Result: api.Equal, Value: []byte("nope")}},
			Success:  []api.TxnOp{putOp("a", "2")},
			Failure:  []api.TxnOp{getOp("a")},
		}),
		txnLog(t, 4, 0, ops(putOp("b", "1"), addOp("n", 1))),                                // fails: n is not a number
		{Type: raft.LogCommand, Index: 5, Data: []byte{0xff, 0x00}},                         // garbage
		txnLog(t, 6, 0, ops(api.TxnOp{Kind: api.TxnPut, Key: make([]byte, 1025)})),          // invalid
		cmdLog(t, 7, &Command{NowMs: 0, Txn: ops(putOp("c", "1")), Expire: []ExpiredKey{}}), // valid: empty expire is dropped
		txnLog(t, 8, 0, ops(putOp("a", "3"))),
	}
	results := s.ApplyBatch(logs)
	if len(results) != len(logs) {
		t.Fatalf("got %d results; want %d", len(results), len(logs))
	}
	res := func(i int) *ApplyResult {
		t.Helper()
		r, ok := results[i].(*ApplyResult)
		if !ok {
			t.Fatalf("result %d = %#v; want *ApplyResult", i, results[i])
		}
		return r
	}
	if r := res(0); r.Err != nil || !r.Txn.Succeeded || r.Txn.Revision != 1 {
		t.Fatalf("result 0 = %+v", r)
	}
	if results[1] != nil {
		t.Fatalf("configuration log result = %#v; want nil", results[1])
	}
	if r := res(2); r.Err != nil || r.Txn.Succeeded || string(r.Txn.Results[0].KVs[0].Value) != "1" {
		t.Fatalf("result 2 = %+v", r)
	}
	wantCode(t, res(3).Err, api.CodeInvalidArgument)
	wantCode(t, res(4).Err, api.CodeInvalidArgument)
	wantCode(t, res(5).Err, api.CodeInvalidArgument)
	if r := res(6); r.Err != nil || r.Txn.Revision != 7 {
		t.Fatalf("result 6 = %+v", r)
	}
	if r := res(7); r.Err != nil || r.Txn.Revision != 8 {
		t.Fatalf("result 7 = %+v", r)
	}
	wantKV(t, mustGet(t, s, "a", 0), "3", 2, 1, 8)
	wantKV(t, mustGet(t, s, "c", 0), "1", 1, 7, 7)
	if kv := mustGet(t, s, "b", 0); kv != nil {
		t.Fatalf("b from the failed txn exists: %+v", kv)
	}
	if s.AppliedIndex() != 8 {
		t.Fatalf("AppliedIndex = %d; want 8", s.AppliedIndex())
	}
}

func TestReopenSkipsAppliedLogs(t *testing.T) {
	path := t.TempDir() + "/kv.db"
	var logs []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		logs = append(logs, txnLog(t, i, 0, ops(putOp("k", fmt.Sprint(i)), addOp("count", 1))))
	}
	logs = append(logs, &raft.Log{Type: raft.LogConfiguration, Index: 6})

	s1, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s1.ApplyBatch(logs[:3])
	s1.ApplyBatch(logs[3:])
	before := dump(t, s1)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStoreAt(t, path)
	if s2.AppliedIndex() != 6 {
		t.Fatalf("AppliedIndex after reopen = %d; want 6", s2.AppliedIndex())
	}
	for i, r := range s2.ApplyBatch(logs) {
		if r != nil {
			t.Fatalf("re-applied log %d: result %#v; want nil", i, r)
		}
	}
	if r := s2.Apply(logs[2]); r != nil {
		t.Fatalf("Apply of an old log = %#v; want nil", r)
	}
	if err := diffDumps(before, dump(t, s2)); err != nil {
		t.Fatalf("state changed by re-applying: %v", err)
	}
	wantKV(t, mustGet(t, s2, "count", 0), "5", 5, 1, 5)

	// A batch straddling the applied index applies only the new part.
	rs := s2.ApplyBatch([]*raft.Log{logs[4], txnLog(t, 7, 0, ops(addOp("count", 1)))})
	if rs[0] != nil || rs[1] == nil {
		t.Fatalf("straddling batch results = %#v; want [nil, result]", rs)
	}
	wantKV(t, mustGet(t, s2, "count", 0), "6", 6, 1, 7)
}
