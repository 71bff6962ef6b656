package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
)

// The timed workload checks what depends on time (the leader's clock, which
// the clock-jump nemesis moves forward and back):
//
//   - TTL keys: each is written once with a short TTL, then read (through
//     any node, linearizably) until it is gone and a few times after. A key
//     read present after a read saw it gone has come back from expiry.
//   - Leases: each is granted with a 1 s TTL, kept alive once (the
//     deadline must not move back) and then asked about until it is gone
//     (NOT_FOUND) and a few times after; a lease found again after it was
//     gone has come back from expiry.
//   - A lock with fencing tokens (TimedLock): holders acquire it with a
//     fixed TTL, maybe renew it, and release it. Tokens must be unique and
//     grow in real-time order; when a holder's release succeeded (the
//     service still saw it as the holder), the next token's acquisition
//     must not have returned before that release was sent; acquisition
//     times (deadline − TTL) must not go backwards in token order, nor a
//     deadline on renewal.
const (
	TimedLock  = "chaos-lock"
	timedTTLMs = 1000 // lock TTL
)

// TimedReport is the outcome of the timed workload.
type TimedReport struct {
	TTLKeys    int64    `json:"ttl_keys"`    // TTL keys written and acknowledged
	TTLExpired int64    `json:"ttl_expired"` // of those, seen gone
	Leases     int64    `json:"leases"`      // leases granted
	LeasesGone int64    `json:"leases_gone"` // of those, seen expired
	Holds      int      `json:"lock_holds"`  // lock acquisitions granted
	Releases   int      `json:"releases"`    // of those, released while still held
	Violations []string `json:"violations"`  // each broken rule, with the evidence
}

// Summary describes the report on one line.
func (r TimedReport) Summary() string {
	return fmt.Sprintf("%d TTL keys (%d seen expired), %d leases (%d seen expired), %d lock holds (%d released in time), %d violations",
		r.TTLKeys, r.TTLExpired, r.Leases, r.LeasesGone, r.Holds, r.Releases, len(r.Violations))
}

// Err reports the violations, or nil.
func (r TimedReport) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	const show = 5
	v := r.Violations
	more := ""
	if len(v) > show {
		v, more = v[:show], fmt.Sprintf(" (and %d more)", len(r.Violations)-show)
	}
	return fmt.Errorf("time safety: %s%s", strings.Join(v, "; "), more)
}

// hold is one granted acquisition of TimedLock.
type hold struct {
	token            uint64
	acqCall, acqRet  time.Time
	deadline         int64 // of the acquisition
	relCall          time.Time
	relOK            bool // the release succeeded: the lock was still this hold's
	holder           string
	renewedBackwards string // non-empty: a renewal moved the deadline back
}

// timed collects the timed workload's observations.
type timed struct {
	ttlKeys, ttlExpired atomic.Int64
	leases, leasesGone  atomic.Int64
	mu                  sync.Mutex // guards holds and violations
	holds               []hold
	violations          []string
}

func newTimed() *timed { return &timed{} }

func (t *timed) violate(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.violations = append(t.violations, fmt.Sprintf(format, args...))
}

func (t *timed) counts() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("ttl keys %d (%d expired), leases %d (%d expired), lock holds %d",
		t.ttlKeys.Load(), t.ttlExpired.Load(), t.leases.Load(), t.leasesGone.Load(), len(t.holds))
}

// work takes turns at TTL-key, lock and lease rounds until ctx ends;
// worker id starts at round id, so a short run with 3 workers has all
// three kinds.
func (t *timed) work(ctx context.Context, cl *client.Client, id int, rng *rand.Rand, cfg *Config) {
	for seq := id; ctx.Err() == nil; seq++ {
		var ok bool
		switch seq % 3 {
		case 0:
			ok = t.ttlRound(ctx, cl, fmt.Sprintf("ttl/%d/%d", id, seq), rng, cfg)
		case 1:
			ok = t.lockRound(ctx, cl, fmt.Sprintf("w%d", id), rng, cfg)
		default:
			ok = t.leaseRound(ctx, cl, rng, cfg)
		}
		if !ok && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond) // do not spin while the cluster has no leader
		}
	}
}

// ttlRound writes key with a TTL of 200-800 ms and reads it until it is
// gone, then three more times; ok is false when the write was not
// acknowledged.
func (t *timed) ttlRound(ctx context.Context, cl *client.Client, key string, rng *rand.Rand, cfg *Config) bool {
	ttl := int64(200 + rng.IntN(600))
	octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	_, err := cl.Put(octx, &api.PutRequest{Key: []byte(key), Value: []byte("v"), TTLMs: ttl})
	cancel()
	if err != nil {
		return false // not acknowledged: an unknown outcome is not checked
	}
	t.ttlKeys.Add(1)
	t.untilGone(ctx, rng, cfg, time.Duration(ttl)*time.Millisecond, &t.ttlExpired, func(octx context.Context) (bool, string, error) {
		r, err := cl.Get(octx, &api.GetRequest{Key: []byte(key)})
		if err != nil {
			return false, "", err
		}
		return r.KV != nil, fmt.Sprintf("TTL key %s (ttl %d ms) read present at revision %d", key, ttl, r.Revision), nil
	})
	return true
}

// leaseRound grants a lease of 1 s, keeps it alive once after 0-300 ms
// and asks about it until it is gone; ok is false when the grant was not
// acknowledged.
func (t *timed) leaseRound(ctx context.Context, cl *client.Client, rng *rand.Rand, cfg *Config) bool {
	octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	g, err := cl.LeaseGrant(octx, &api.LeaseGrantRequest{TTLSeconds: 1})
	cancel()
	if err != nil {
		return false
	}
	t.leases.Add(1)
	id := &api.LeaseRequest{LeaseID: g.LeaseID}
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	octx, cancel = context.WithTimeout(ctx, cfg.OpTimeout)
	k, err := cl.LeaseKeepAlive(octx, id)
	cancel()
	if err == nil && k.DeadlineMs < g.DeadlineMs {
		t.violate("lease %d: keepalive moved its deadline from %d to %d", g.LeaseID, g.DeadlineMs, k.DeadlineMs)
	}
	t.untilGone(ctx, rng, cfg, time.Second, &t.leasesGone, func(octx context.Context) (bool, string, error) {
		r, err := cl.LeaseTTL(octx, id)
		switch {
		case errors.Is(err, api.ErrNotFound):
			return false, "", nil
		case err != nil:
			return false, "", err
		}
		return true, fmt.Sprintf("lease %d found (deadline %d)", g.LeaseID, r.DeadlineMs), nil
	})
	return true
}

// untilGone asks present (through any node, linearizably) every 20-100 ms
// until it answers false, then three more times, for at most ttl + 5 s; an
// answer true after a false is a violation, described by present's
// second result. gone counts the things seen gone.
func (t *timed) untilGone(ctx context.Context, rng *rand.Rand, cfg *Config, ttl time.Duration, gone *atomic.Int64,
	present func(context.Context) (bool, string, error)) {
	goneAt, after := time.Time{}, 0
	deadline := time.Now().Add(ttl + 5*time.Second)
	for after < 3 && time.Now().Before(deadline) && ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		call := time.Now()
		there, what, err := present(octx)
		cancel()
		switch {
		case err != nil:
		case !there && goneAt.IsZero():
			goneAt = call
			gone.Add(1)
		case !there:
			after++
		case !goneAt.IsZero():
			t.violate("%s, %v after a read saw it expired", what, call.Sub(goneAt).Round(time.Millisecond))
			return
		}
		time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
	}
}

// lockRound tries to take TimedLock, holds it 0-300 ms, renews it half of
// the time and releases it; ok is false when the lock was not granted.
func (t *timed) lockRound(ctx context.Context, cl *client.Client, holder string, rng *rand.Rand, cfg *Config) bool {
	h := hold{holder: holder, acqCall: time.Now()}
	octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	r, err := cl.LockTryAcquire(octx, &api.LockAcquireRequest{Key: TimedLock, HolderID: holder, TTLMs: timedTTLMs})
	cancel()
	h.acqRet = time.Now()
	if err != nil || !r.IsSuccess {
		return false // held by another, refused, or unknown (a gap in the tokens)
	}
	h.token, h.deadline = r.FencingToken, r.DeadlineMs
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	if rng.IntN(2) == 0 {
		octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		rr, err := cl.LockRenew(octx, &api.LockRenewRequest{Key: TimedLock, HolderID: holder, FencingToken: h.token})
		cancel()
		if err == nil && rr.IsSuccess && rr.DeadlineMs < h.deadline {
			h.renewedBackwards = fmt.Sprintf("renewal moved deadline from %d to %d", h.deadline, rr.DeadlineMs)
		}
	}
	h.relCall = time.Now()
	octx, cancel = context.WithTimeout(context.WithoutCancel(ctx), cfg.OpTimeout)
	rel, err := cl.LockRelease(octx, &api.LockReleaseRequest{Key: TimedLock, HolderID: holder, FencingToken: h.token})
	cancel()
	h.relOK = err == nil && rel.IsSuccess
	t.mu.Lock()
	t.holds = append(t.holds, h)
	t.mu.Unlock()
	return true
}

// report checks the lock rules over every hold and returns the report.
func (t *timed) report() TimedReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	holds := slices.Clone(t.holds)
	slices.SortFunc(holds, func(a, b hold) int { return a.acqRet.Compare(b.acqRet) })
	var v []string
	// tokens grow in real-time order: a hold granted (returned) before
	// another was asked for has the smaller token
	var maxDone uint64 // largest token of holds returned before the current one was asked for
	var maxHold hold
	byCall := slices.Clone(holds)
	slices.SortFunc(byCall, func(a, b hold) int { return a.acqCall.Compare(b.acqCall) })
	k := 0
	for _, b := range byCall {
		for ; k < len(holds) && holds[k].acqRet.Before(b.acqCall); k++ {
			if holds[k].token > maxDone {
				maxDone, maxHold = holds[k].token, holds[k]
			}
		}
		if maxDone >= b.token {
			v = append(v, fmt.Sprintf("fencing token %d (%s) granted after token %d (%s) had been granted", b.token, b.holder, maxHold.token, maxHold.holder))
		}
	}
	slices.SortFunc(holds, func(a, b hold) int { return cmp.Compare(a.token, b.token) })
	releases := 0
	for i, h := range holds {
		if h.relOK {
			releases++
		}
		if h.renewedBackwards != "" {
			v = append(v, fmt.Sprintf("token %d: %s", h.token, h.renewedBackwards))
		}
		if i == 0 {
			continue
		}
		p := holds[i-1]
		switch {
		case p.token == h.token:
			v = append(v, fmt.Sprintf("fencing token %d granted twice (%s and %s)", h.token, p.holder, h.holder))
		case p.relOK && h.acqRet.Before(p.relCall):
			v = append(v, fmt.Sprintf("token %d (%s) granted %v before token %d (%s) was released while still held",
				h.token, h.holder, p.relCall.Sub(h.acqRet).Round(time.Millisecond), p.token, p.holder))
		case h.deadline < p.deadline: // same TTL: acquisition time went back
			v = append(v, fmt.Sprintf("token %d acquired at %d ms, before token %d (at %d ms): lock time went backwards",
				h.token, h.deadline-timedTTLMs, p.token, p.deadline-timedTTLMs))
		}
	}
	return TimedReport{
		TTLKeys: t.ttlKeys.Load(), TTLExpired: t.ttlExpired.Load(), Leases: t.leases.Load(), LeasesGone: t.leasesGone.Load(),
		Holds: len(holds), Releases: releases,
		Violations: append(slices.Clone(t.violations), v...),
	}
}
