package coord

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
)

func TestDecideLeaseGrantKeepAlive(t *testing.T) {
	const now = 10_000
	live := &leaseRecord{TTLSeconds: 5, GrantedAtMs: now - 1000, DeadlineMs: now + 4000, Keys: 2}
	expired := &leaseRecord{TTLSeconds: 5, DeadlineMs: now}

	if next, err := decideLeaseGrant(nil, 7, 60, now); err != nil || next.DeadlineMs != now+60_000 || next.TTLSeconds != 60 || next.Keys != 0 {
		t.Fatalf("grant new = %+v, %v", next, err)
	}
	for _, cur := range []*leaseRecord{live, expired} {
		if _, err := decideLeaseGrant(cur, 7, 60, now); api.CodeOf(err) != api.CodeConflict {
			t.Errorf("grant over %+v: got %v, want CONFLICT", cur, err)
		}
	}

	next, err := decideLeaseKeepAlive(live, 7, now)
	if err != nil || next.DeadlineMs != now+5000 || next.Keys != 2 || next.GrantedAtMs != live.GrantedAtMs {
		t.Fatalf("keepalive = %+v, %v", next, err)
	}
	tests := []struct {
		name string
		cur  *leaseRecord
		want string
	}{
		{"unknown", nil, "lease 7 not found"},
		{"expired", expired, "lease 7 expired 0 ms ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decideLeaseKeepAlive(tt.cur, 7, now)
			if api.CodeOf(err) != api.CodeNotFound || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want NOT_FOUND %q", err, tt.want)
			}
		})
	}
}

func TestDecideLeaseAttach(t *testing.T) {
	const now = 10_000
	rec := func(keys int) *leaseRecord { return &leaseRecord{TTLSeconds: 5, DeadlineMs: now + 1, Keys: keys} }
	tests := []struct {
		name     string
		cur      *leaseRecord
		attached bool
		wantKeys int
		wantCode api.Code
	}{
		{"first key", rec(0), false, 1, ""},
		{"re-attach does not count twice", rec(3), true, 3, ""},
		{"at the cap", rec(api.MaxLeaseKeys), false, 0, api.CodeResourceExhausted},
		{"re-attach at the cap", rec(api.MaxLeaseKeys), true, api.MaxLeaseKeys, ""},
		{"unknown lease", nil, false, 0, api.CodeNotFound},
		{"expired lease", &leaseRecord{DeadlineMs: now}, false, 0, api.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, err := decideLeaseAttach(tt.cur, tt.attached, 9, now)
			if api.CodeOf(err) != tt.wantCode {
				t.Fatalf("got %v, want code %q", err, tt.wantCode)
			}
			if err == nil && (next.Keys != tt.wantKeys || next.DeadlineMs != tt.cur.DeadlineMs) {
				t.Errorf("got %+v, want keys %d and the same deadline", next, tt.wantKeys)
			}
		})
	}
}

func TestDecideLeaseRevoke(t *testing.T) {
	const now = 10_000
	live := &leaseRecord{TTLSeconds: 5, DeadlineMs: now + 1, Keys: 3}
	expired := &leaseRecord{TTLSeconds: 5, DeadlineMs: now, Keys: 3}
	atts := []leaseAttachment{{Key: []byte("a"), Rev: 5}, {Key: []byte("b"), Rev: 6}, {Key: []byte("c"), Rev: 7}}
	keys := []*api.KeyValue{
		{Key: []byte("a"), ModRevision: 5}, // still attached
		{Key: []byte("b"), ModRevision: 9}, // rewritten without the lease: detached
		nil,                                // deleted
	}
	ops, n, err := decideLeaseRevoke(live, 3, atts, keys, now, false)
	if err != nil || n != 1 {
		t.Fatalf("revoke: deleted %d, %v; want 1", n, err)
	}
	got := fmt.Sprint(opsString(ops))
	want := "[delete a delete_range __coord:leasekey:00000000000000000003: delete __coord:lease:00000000000000000003]"
	if got != want {
		t.Errorf("ops = %s, want %s", got, want)
	}

	if ops, _, err := decideLeaseRevoke(live, 3, atts, keys, now, true); err != nil || ops != nil {
		t.Errorf("expiry of a live lease: %v, %v; want nothing", ops, err)
	}
	if ops, n, err := decideLeaseRevoke(expired, 3, atts, keys, now, true); err != nil || n != 1 || len(ops) != 3 {
		t.Errorf("expiry of an expired lease: %v, %d, %v", ops, n, err)
	}
	// The quirk of the original: a lease with no keys is deleted too.
	if ops, n, err := decideLeaseRevoke(live, 3, nil, nil, now, false); err != nil || n != 0 || len(ops) != 2 || ops[1].Kind != api.TxnDelete {
		t.Errorf("revoke without keys: %v, %d, %v; want the lease record deleted", ops, n, err)
	}
	if _, _, err := decideLeaseRevoke(nil, 3, nil, nil, now, false); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("revoke unknown: %v, want NOT_FOUND", err)
	}
}

func opsString(ops []api.TxnOp) []string {
	var out []string
	for _, op := range ops {
		out = append(out, string(op.Kind)+" "+string(op.Key))
	}
	return out
}

func TestCanonicalLockSet(t *testing.T) {
	many := make([]string, api.MaxLockSetMembers+1)
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	tests := []struct {
		name    string
		req     api.LockSetRequest
		tokens  bool
		want    string // sorted names, or the error
		wantErr bool
	}{
		{"sorted", api.LockSetRequest{Keys: []string{"c", "a", "b"}, HolderID: "h"}, false, "a b c", false},
		{"tokens follow their keys", api.LockSetRequest{Keys: []string{"b", "a"}, HolderID: "h", FencingTokens: []uint64{2, 1}}, true, "a:1 b:2", false},
		{"empty", api.LockSetRequest{HolderID: "h"}, false, "keys is empty", true},
		{"too many", api.LockSetRequest{Keys: many, HolderID: "h"}, false, "keys has 17 members; the limit is 16", true},
		{"duplicate", api.LockSetRequest{Keys: []string{"a", "b", "a"}, HolderID: "h"}, false, `keys has "a" twice`, true},
		{"empty member", api.LockSetRequest{Keys: []string{"a", ""}, HolderID: "h"}, false, "keys[1] is empty", true},
		{"no holder", api.LockSetRequest{Keys: []string{"a"}}, false, "holder_id is empty", true},
		{"missing tokens", api.LockSetRequest{Keys: []string{"a", "b"}, HolderID: "h", FencingTokens: []uint64{1}}, true, "fencing_tokens has 1 entries for 2 keys", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := canonicalLockSet(&tt.req, tt.tokens)
			if tt.wantErr {
				if api.CodeOf(err) != api.CodeInvalidArgument || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %v, want INVALID_ARGUMENT %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				if tt.tokens {
					got = append(got, fmt.Sprintf("%s:%d", m.name, m.token))
				} else {
					got = append(got, m.name)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestDecideLockSetAllOrNothing(t *testing.T) {
	const now = 1000
	ms := []lockSetMember{{name: "a"}, {name: "b"}, {name: "c"}}
	acquire := func(cur *lockRecord, _ lockSetMember) (*lockRecord, api.LockResponse) {
		return decideLockAcquire(cur, "h", 100, now)
	}
	free := []*lockRecord{nil, {HolderID: "x", FencingToken: 4}, {HolderID: "y", FencingToken: 9, DeadlineMs: now - 1}}
	next, resp := decideLockSet(free, ms, "h", acquire)
	if !resp.IsSuccess || len(next) != 3 {
		t.Fatalf("acquire free set: %+v", resp)
	}
	for i, want := range []uint64{1, 5, 10} {
		if resp.Members[i].FencingToken != want || next[i].FencingToken != want || resp.Members[i].DeadlineMs != now+100 {
			t.Errorf("member %s: token %d (record %d), want %d", ms[i].name, resp.Members[i].FencingToken, next[i].FencingToken, want)
		}
	}

	oneHeld := []*lockRecord{nil, {HolderID: "x", FencingToken: 4, DeadlineMs: now + 1}, nil}
	next, resp = decideLockSet(oneHeld, ms, "h", acquire)
	if resp.IsSuccess || next != nil || resp.BlockedMember != "b" || resp.BlockedHolder != "x" || !strings.Contains(resp.Error, `member "b": held by x`) {
		t.Fatalf("acquire with a held member: next %v, resp %+v", next, resp)
	}
}
