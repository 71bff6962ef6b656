package api

// Operation names of lock sets: all-or-nothing holds over up to
// MaxLockSetMembers locks, each member an ordinary lock (same records, same
// fencing tokens as lock.*). lock.status reads one lock.
const (
	OpLockSetTryAcquire = "lockset.try_acquire"
	OpLockSetRelease    = "lockset.release"
	OpLockSetRenew      = "lockset.renew"
	OpLockStatus        = "lock.status"
)

// MaxLockSetMembers is the most locks one lock set holds.
const MaxLockSetMembers = 16

// LockSetRequest names the member locks of a set (canonicalised: sorted;
// duplicates and empty sets are refused) and the holder. TTLMs is the hold
// of try_acquire and renew (renew: 0 keeps each member's TTL).
// FencingTokens (release, renew) holds one token per entry of Keys, in the
// same order.
type LockSetRequest struct {
	Keys          []string `cbor:"keys" json:"keys"`
	HolderID      string   `cbor:"holder_id" json:"holder_id"`
	TTLMs         int64    `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
	FencingTokens []uint64 `cbor:"fencing_tokens,omitempty" json:"fencing_tokens,omitempty"`
}

// LockSetMember is one member lock of a set and its fencing token.
type LockSetMember struct {
	Key          string `cbor:"key" json:"key"`
	FencingToken uint64 `cbor:"fencing_token" json:"fencing_token"`
	DeadlineMs   int64  `cbor:"deadline_ms" json:"deadline_ms"`
}

// LockSetResponse is the answer of every lock set operation. Members are in
// canonical (sorted) order. When IsSuccess is false nothing changed;
// BlockedMember and BlockedHolder name the first member that refused and
// its holder, and Error says why.
type LockSetResponse struct {
	Operation     string          `cbor:"operation" json:"operation"`
	IsSuccess     bool            `cbor:"is_success" json:"is_success"`
	HolderID      string          `cbor:"holder_id" json:"holder_id"`
	Members       []LockSetMember `cbor:"members" json:"members"`
	BlockedMember string          `cbor:"blocked_member,omitempty" json:"blocked_member,omitempty"`
	BlockedHolder string          `cbor:"blocked_holder,omitempty" json:"blocked_holder,omitempty"`
	Error         string          `cbor:"error,omitempty" json:"error,omitempty"`
}

// LockStatusRequest names a lock.
type LockStatusRequest struct {
	Key string `cbor:"key" json:"key"`
}
