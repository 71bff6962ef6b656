package api

// Operation names of leases. A lease is a TTL (seconds, on the leader's
// clock) that keys can be attached to: when it is revoked or expires, every
// key still attached is deleted in one transaction.
const (
	OpLeaseGrant     = "lease.grant"
	OpLeaseTTL       = "lease.ttl"
	OpLeaseKeepAlive = "lease.keepalive"
	OpLeaseRevoke    = "lease.revoke"
	OpLeaseList      = "lease.list"
	OpLeasePut       = "lease.put" // write a key attached to a lease
)

// Limits of leases.
const (
	// MaxLeaseKeys is how many keys can be attached to one lease: revoking
	// deletes them all in one transaction, which holds at most MaxBatchOps
	// operations.
	MaxLeaseKeys = 64
	// MaxLeaseTTLSeconds is the longest lease TTL (MaxTTLMs in seconds).
	MaxLeaseTTLSeconds = MaxTTLMs / 1000
	// MaxLeaseID is the largest lease id (2^53-1, exact in JSON numbers).
	MaxLeaseID = 1<<53 - 1
)

// LeaseGrantRequest creates a lease of TTLSeconds. LeaseID 0 lets the
// cluster pick a random non-zero id; a given id must not be in use.
type LeaseGrantRequest struct {
	TTLSeconds int64 `cbor:"ttl_seconds" json:"ttl_seconds"`
	LeaseID    int64 `cbor:"lease_id,omitempty" json:"lease_id,omitempty"`
}

// LeaseRequest names a lease (ttl, keepalive, revoke). Keys asks ttl to
// list the attached keys.
type LeaseRequest struct {
	LeaseID int64 `cbor:"lease_id" json:"lease_id"`
	Keys    bool  `cbor:"keys,omitempty" json:"keys,omitempty"`
}

// LeaseInfo describes a live lease. TTLSeconds and GrantedTTLSeconds are
// both the granted TTL (grant answers with the first name, ttl with the
// second); RemainingTTLSeconds is rounded up; DeadlineMs is unix ms on the
// leader's clock. AttachedKeys counts attachments (a key rewritten without
// the lease since is detached but still counted until the lease ends);
// Keys, when asked for, lists the keys still attached.
type LeaseInfo struct {
	Operation           string   `cbor:"operation,omitempty" json:"operation,omitempty"`
	LeaseID             int64    `cbor:"lease_id" json:"lease_id"`
	TTLSeconds          int64    `cbor:"ttl_seconds" json:"ttl_seconds"`
	GrantedTTLSeconds   int64    `cbor:"granted_ttl_seconds" json:"granted_ttl_seconds"`
	RemainingTTLSeconds int64    `cbor:"remaining_ttl_seconds" json:"remaining_ttl_seconds"`
	DeadlineMs          int64    `cbor:"deadline_ms" json:"deadline_ms"`
	AttachedKeys        int      `cbor:"attached_keys" json:"attached_keys"`
	Keys                []string `cbor:"keys,omitempty" json:"keys,omitempty"`
}

// LeaseRevokeResponse reports how many attached keys a revoke deleted.
type LeaseRevokeResponse struct {
	Operation   string `cbor:"operation" json:"operation"`
	LeaseID     int64  `cbor:"lease_id" json:"lease_id"`
	KeysDeleted int    `cbor:"keys_deleted" json:"keys_deleted"`
}

// LeaseListRequest lists live leases in id order, at most Limit (default
// DefaultScanLimit, at most MaxScanLimit).
type LeaseListRequest struct {
	Limit int `cbor:"limit,omitempty" json:"limit,omitempty"`
}

// LeaseListResponse holds the live leases; More says the limit cut the list.
type LeaseListResponse struct {
	Leases []LeaseInfo `cbor:"leases" json:"leases"`
	More   bool        `cbor:"more,omitempty" json:"more,omitempty"`
}

// LeasePutRequest writes Key = Value attached to lease LeaseID: the key is
// deleted when the lease is revoked or expires, unless it is written again
// without the lease before that.
type LeasePutRequest struct {
	LeaseID int64  `cbor:"lease_id" json:"lease_id"`
	Key     []byte `cbor:"key" json:"key"`
	Value   []byte `cbor:"value" json:"value"`
}

// LeasePutResponse reports the revision of the write.
type LeasePutResponse struct {
	LeaseID  int64  `cbor:"lease_id" json:"lease_id"`
	Revision uint64 `cbor:"revision" json:"revision"`
}
