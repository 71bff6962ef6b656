package coord

import (
	"math"
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
)

func TestDecideLockAcquire(t *testing.T) {
	const now = 1000
	tests := []struct {
		name      string
		cur       *lockRecord
		holder    string
		wantOK    bool
		wantToken uint64
		wantErr   string
	}{
		{"new lock", nil, "a", true, 1, ""},
		{"released", &lockRecord{HolderID: "a", FencingToken: 4, DeadlineMs: 0}, "b", true, 5, ""},
		{"expired", &lockRecord{HolderID: "a", FencingToken: 4, DeadlineMs: now}, "b", true, 5, ""},
		{"held by other", &lockRecord{HolderID: "a", FencingToken: 4, DeadlineMs: now + 1}, "b", false, 4, "held by a"},
		{"not re-entrant", &lockRecord{HolderID: "a", FencingToken: 4, DeadlineMs: now + 1}, "a", false, 4, "held by a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, resp := decideLockAcquire(tt.cur, tt.holder, 500, now)
			if resp.IsSuccess != tt.wantOK || resp.FencingToken != tt.wantToken {
				t.Fatalf("got ok=%v token=%d, want ok=%v token=%d", resp.IsSuccess, resp.FencingToken, tt.wantOK, tt.wantToken)
			}
			if !strings.Contains(resp.Error, tt.wantErr) {
				t.Errorf("error %q does not contain %q", resp.Error, tt.wantErr)
			}
			if tt.wantOK {
				if next == nil || next.HolderID != tt.holder || next.DeadlineMs != now+500 || next.FencingToken != tt.wantToken {
					t.Errorf("record = %+v", next)
				}
			} else if next != nil {
				t.Errorf("refused acquire writes %+v", next)
			}
		})
	}
}

func TestDecideLockReleaseRenew(t *testing.T) {
	const now = 1000
	held := &lockRecord{HolderID: "a", FencingToken: 3, TTLMs: 100, DeadlineMs: now + 50}
	expired := &lockRecord{HolderID: "a", FencingToken: 3, TTLMs: 100, DeadlineMs: now - 1}
	released := &lockRecord{HolderID: "a", FencingToken: 3, DeadlineMs: 0}
	tests := []struct {
		name      string
		renew     bool
		cur       *lockRecord
		holder    string
		token     uint64
		wantOK    bool
		wantWrite bool
		wantErr   string
	}{
		{"release held", false, held, "a", 3, true, true, ""},
		{"release missing", false, nil, "a", 3, true, false, ""},
		{"release again", false, released, "a", 3, true, false, ""},
		{"release wrong token", false, held, "a", 2, false, false, "held by a with fencing token 3"},
		{"release wrong holder", false, held, "b", 3, false, false, "held by a"},
		{"release expired", false, expired, "a", 3, false, false, "lock expired"},
		{"renew held", true, held, "a", 3, true, true, ""},
		{"renew missing", true, nil, "a", 3, false, false, "lock not found"},
		{"renew expired", true, expired, "a", 3, false, false, "lock expired"},
		{"renew released", true, released, "a", 3, false, false, "released"},
		{"renew wrong token", true, held, "a", 4, false, false, "fencing token 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var next *lockRecord
			var resp api.LockResponse
			if tt.renew {
				next, resp = decideLockRenew(tt.cur, tt.holder, tt.token, 0, now)
			} else {
				next, resp = decideLockRelease(tt.cur, tt.holder, tt.token, now)
			}
			if resp.IsSuccess != tt.wantOK || (next != nil) != tt.wantWrite {
				t.Fatalf("got ok=%v write=%v (%q), want ok=%v write=%v", resp.IsSuccess, next != nil, resp.Error, tt.wantOK, tt.wantWrite)
			}
			if !strings.Contains(resp.Error, tt.wantErr) {
				t.Errorf("error %q does not contain %q", resp.Error, tt.wantErr)
			}
			if next != nil && next.FencingToken != tt.cur.FencingToken {
				t.Errorf("token changed to %d", next.FencingToken)
			}
			if next != nil && !tt.renew && next.DeadlineMs != 0 {
				t.Errorf("release left deadline %d", next.DeadlineMs)
			}
			if next != nil && tt.renew && next.DeadlineMs != now+100 {
				t.Errorf("renew deadline %d, want %d (the acquisition's ttl)", next.DeadlineMs, now+100)
			}
		})
	}
}

func TestSaturation(t *testing.T) {
	tests := []struct {
		a, b, add, sub uint64
	}{
		{0, 1, 1, 0},
		{5, 3, 8, 2},
		{math.MaxUint64 - 1, 5, math.MaxUint64, math.MaxUint64 - 6},
		{math.MaxUint64, math.MaxUint64, math.MaxUint64, 0},
		{2, 3, 5, 0},
	}
	for _, tt := range tests {
		if got := satAdd(tt.a, tt.b); got != tt.add {
			t.Errorf("satAdd(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.add)
		}
		if got := satSub(tt.a, tt.b); got != tt.sub {
			t.Errorf("satSub(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.sub)
		}
	}
}

func TestDecideCounterCAS(t *testing.T) {
	tests := []struct {
		name          string
		cur, exp, new uint64
		wantOK        bool
		wantValue     uint64
	}{
		{"match", 100, 100, 200, true, 200},
		{"mismatch reports current", 200, 100, 999, false, 200},
		{"missing is zero", 0, 0, 5, true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, v := decideCounterCAS(tt.cur, tt.exp, tt.new)
			if ok != tt.wantOK || v != tt.wantValue {
				t.Errorf("got (%v, %d), want (%v, %d)", ok, v, tt.wantOK, tt.wantValue)
			}
		})
	}
}

func TestDecideSemaphore(t *testing.T) {
	const now = 1000
	rec := func(hs ...semHolder) *semRecord { return &semRecord{Capacity: 3, Holders: hs} }
	h := func(id string, p uint32, deadline int64) semHolder {
		return semHolder{HolderID: id, Permits: p, DeadlineMs: deadline}
	}
	tests := []struct {
		name        string
		cur         *semRecord
		holder      string
		permits     uint32
		wantOK      bool
		wantAvail   uint32
		wantHolders int
		wantRetry   int64
	}{
		{"new", nil, "a", 1, true, 2, 1, 0},
		{"fits", rec(h("a", 1, now+10), h("b", 1, now+10)), "c", 1, true, 0, 3, 0},
		{"full", rec(h("a", 1, now+10), h("b", 1, now+20), h("c", 1, now+30)), "d", 1, false, 0, 0, 10},
		{"expired frees", rec(h("a", 1, now), h("b", 1, now+20), h("c", 1, now+30)), "d", 1, true, 0, 3, 0},
		{"same holder refreshes", rec(h("a", 1, now+10), h("b", 1, now+20), h("c", 1, now+30)), "a", 1, true, 0, 3, 0},
		{"same holder grows within capacity", rec(h("a", 1, now+10), h("b", 1, now+20)), "a", 2, true, 0, 2, 0},
		{"too many for capacity", rec(h("a", 2, now+10)), "b", 2, false, 1, 0, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, resp := decideSemAcquire(tt.cur, tt.holder, tt.permits, 3, 500, now)
			if resp.IsSuccess != tt.wantOK || resp.Available != tt.wantAvail || resp.RetryAfterMs != tt.wantRetry {
				t.Fatalf("got ok=%v avail=%d retry=%d (%q), want ok=%v avail=%d retry=%d",
					resp.IsSuccess, resp.Available, resp.RetryAfterMs, resp.Error, tt.wantOK, tt.wantAvail, tt.wantRetry)
			}
			if tt.wantOK && len(next.Holders) != tt.wantHolders {
				t.Errorf("%d holders, want %d", len(next.Holders), tt.wantHolders)
			}
			if !tt.wantOK && next != nil {
				t.Errorf("refused acquire writes %+v", next)
			}
		})
	}
	next, resp := decideSemRelease(rec(h("a", 2, now+10), h("b", 1, now+10)), "a", 1, now)
	if !resp.IsSuccess || resp.PermitsAcquired != 1 || resp.Available != 1 || len(next.Holders) != 2 {
		t.Errorf("partial release: %+v %+v", resp, next)
	}
	next, resp = decideSemRelease(rec(h("a", 2, now+10)), "a", 0, now)
	if !resp.IsSuccess || resp.Available != 3 || len(next.Holders) != 0 {
		t.Errorf("full release: %+v %+v", resp, next)
	}
	if next, resp = decideSemRelease(rec(h("a", 2, now+10)), "z", 0, now); !resp.IsSuccess || next != nil {
		t.Errorf("release by a non-holder: %+v %+v", resp, next)
	}
}

func TestDecideTake(t *testing.T) {
	tests := []struct {
		name      string
		cur       *bucketRecord
		tokens    uint64
		now       int64
		wantOK    bool
		wantLeft  uint64
		wantRetry int64
	}{
		{"new bucket starts full", nil, 1, 0, true, 9, 0},
		{"take all", nil, 10, 0, true, 0, 0},
		{"empty waits for deficit over rate", &bucketRecord{MilliTokens: 0, LastRefillMs: 0}, 1, 0, false, 0, 200},
		{"refill 1s at 5/s", &bucketRecord{MilliTokens: 0, LastRefillMs: 0}, 5, 1000, true, 0, 0},
		{"refill capped", &bucketRecord{MilliTokens: 9000, LastRefillMs: 0}, 1, 100000, true, 9, 0},
		{"partial deficit rounds up", &bucketRecord{MilliTokens: 4000, LastRefillMs: 0}, 10, 0, false, 4, 1200},
		{"clock went back refills nothing", &bucketRecord{MilliTokens: 0, LastRefillMs: 5000}, 1, 1000, false, 0, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, resp := decideTake(tt.cur, tt.tokens, 10, 5, tt.now)
			if resp.IsSuccess != tt.wantOK || resp.TokensRemaining != tt.wantLeft || resp.RetryAfterMs != tt.wantRetry {
				t.Fatalf("got ok=%v left=%d retry=%d, want ok=%v left=%d retry=%d",
					resp.IsSuccess, resp.TokensRemaining, resp.RetryAfterMs, tt.wantOK, tt.wantLeft, tt.wantRetry)
			}
			if (next != nil) != tt.wantOK {
				t.Errorf("write = %v, want %v", next != nil, tt.wantOK)
			}
			if next != nil && tt.cur != nil && next.LastRefillMs < tt.cur.LastRefillMs {
				t.Errorf("refill time went back to %d", next.LastRefillMs)
			}
		})
	}
}

func TestReserveRange(t *testing.T) {
	if got := reserveRange(13, 10); got != 4 {
		t.Errorf("reserveRange(13, 10) = %d, want 4", got)
	}
	if got := reserveRange(1, 1); got != 1 {
		t.Errorf("reserveRange(1, 1) = %d, want 1", got)
	}
}
