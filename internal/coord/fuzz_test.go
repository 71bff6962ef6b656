package coord

import (
	"testing"

	"github.com/aspen-dev/aspen/api"
)

// FuzzDecodeRecords feeds an arbitrary stored value (anyone with write
// access to the key space can put one under a coordination prefix) to every
// record decoder, and what decodes to the decisions that read it: no
// panic, and a decoded record either decides or is refused with an error.
func FuzzDecodeRecords(f *testing.F) {
	f.Add([]byte(`{"holder_id":"a","fencing_token":3,"acquired_at_ms":1,"ttl_ms":1000,"deadline_ms":1001}`), int64(500))
	f.Add([]byte(`{"capacity":2,"holders":[{"holder_id":"a","permits":1,"acquired_at_ms":1,"deadline_ms":99}]}`), int64(50))
	f.Add([]byte(`{"milli_tokens":-9223372036854775808,"last_refill_ms":-9223372036854775808}`), int64(9223372036854775807))
	f.Add([]byte(`18446744073709551615`), int64(0))
	f.Add([]byte(`{"ttl_seconds":60,"granted_at_ms":1,"deadline_ms":60001,"keys":2}`), int64(30000))
	f.Add([]byte(`{"holders":[{"permits":4294967295,"deadline_ms":9223372036854775807},{"permits":4294967295,"deadline_ms":9223372036854775807}]}`), int64(0))

	f.Fuzz(func(t *testing.T, value []byte, nowMs int64) {
		kv := &api.KeyValue{Key: []byte("k"), Value: value}
		if v, err := decodeUint(kv); err == nil {
			decideCounterCAS(v, v, v+1)
		}
		if r, err := decodeLock(kv); err == nil {
			decideLockAcquire(r, "h", 1000, nowMs)
			decideLockRelease(r, "h", r.FencingToken, nowMs)
			decideLockRenew(r, "h", r.FencingToken, 1000, nowMs)
		}
		if r, err := decodeSem(kv); err == nil {
			decideSemAcquire(r, "h", 1, 3, 1000, nowMs)
			decideSemRelease(r, "h", 1, nowMs)
		}
		if r, err := decodeLease(kv); err == nil {
			if next, err := decideLeaseKeepAlive(r, 1, nowMs); err == nil && nowMs >= 0 && nowMs < 1<<50 && next.DeadlineMs <= nowMs {
				t.Fatalf("keepalive of %+v at %d moved the deadline back to %d", r, nowMs, next.DeadlineMs)
			}
			decideLeaseAttach(r, false, 1, nowMs)
			decideLeaseRevoke(r, 1, nil, nil, nowMs, true)
		}
		if r, err := decodeBucket(kv); err == nil {
			b := refill(r, 10, 5, nowMs)
			if b.MilliTokens > 10*1000 {
				t.Fatalf("refill of %+v holds %d milli-tokens, above the capacity", r, b.MilliTokens)
			}
			decideTake(r, 1, 10, 5, nowMs)
		}
	})
}
