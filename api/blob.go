package api

// Operation names of the blob service. Blob bytes move on their own
// protocol (ALPN aspen/blobs/1, see client.BlobAdd and client.BlobGet);
// these operations carry the metadata kept in the key/value store under
// BlobKeyPrefix.
const (
	OpBlobRegister  = "blob.register" // a node records that it holds a blob
	OpBlobHas       = "blob.has"
	OpBlobList      = "blob.list"
	OpBlobStatus    = "blob.status"
	OpBlobProtect   = "blob.protect"
	OpBlobUnprotect = "blob.unprotect"
	OpBlobDelete    = "blob.delete"

	OpBlobReplicationStatus = "blob.replication_status"
	OpBlobRepair            = "blob.repair"       // repair one blob now (leader)
	OpBlobRepairCycle       = "blob.repair_cycle" // start a repair pass, return at once (leader)
	OpBlobPolicy            = "blob.policy"       // read or change the replication and GC policy
	OpBlobTicket            = "blob.ticket"       // issue a read capability for one blob and name its holders
	OpBlobForget            = "blob.forget"       // a node records that it no longer holds a blob
)

// Limits of the blob service.
const (
	MaxBlobSize        = 1 << 30 // bytes of one blob
	DefaultBlobList    = 100     // blobs per list page by default
	MaxBlobList        = 1000    // blobs per list page
	MaxBlobTagSize     = 256     // bytes of a tag name
	MaxBlobTagsPerBlob = 64      // tags set by one add
	BlobUserTagPrefix  = "user:" // tags set by protect and add --tag
	BlobKeyPrefix      = "_system:blob:"
	// MaxBlobTicketTTLMs bounds the lifetime of a blob ticket with an
	// expiry: 366 days.
	MaxBlobTicketTTLMs = 366 * 24 * 3600 * 1000
)

// BlobRegisterRequest records that NodeID stores the blob Hash (hex) of
// SizeBytes bytes, and sets Tags (full names, e.g. "user:keep") on it.
type BlobRegisterRequest struct {
	Hash      string   `cbor:"hash" json:"hash"`
	SizeBytes int64    `cbor:"size_bytes" json:"size_bytes"`
	NodeID    uint64   `cbor:"node_id" json:"node_id"`
	Tags      []string `cbor:"tags,omitempty" json:"tags,omitempty"`
}

// BlobRegisterResponse says whether the cluster knew the blob before.
type BlobRegisterResponse struct {
	WasNew bool `cbor:"was_new" json:"was_new"`
}

// BlobAddResponse is the outcome of an add (spec 04).
type BlobAddResponse struct {
	IsSuccess bool   `cbor:"is_success" json:"is_success"`
	Hash      string `cbor:"hash" json:"hash"`
	SizeBytes int64  `cbor:"size_bytes" json:"size_bytes"`
	WasNew    bool   `cbor:"was_new" json:"was_new"`
	Error     string `cbor:"error,omitempty" json:"error"`
}

// BlobHashRequest names one blob by its 64-hex-character hash.
type BlobHashRequest struct {
	Hash string `cbor:"hash" json:"hash"`
}

// BlobHasResponse says whether the cluster holds the blob.
type BlobHasResponse struct {
	DoesExist bool `cbor:"does_exist" json:"does_exist"`
}

// BlobListRequest pages through the blobs the cluster knows, in hash order.
type BlobListRequest struct {
	MaxResults        int    `cbor:"max_results,omitempty" json:"max_results,omitempty"`
	ContinuationToken string `cbor:"token,omitempty" json:"continuation_token,omitempty"`
}

// BlobListEntry is one listed blob.
type BlobListEntry struct {
	Hash      string `cbor:"hash" json:"hash"`
	SizeBytes int64  `cbor:"size_bytes" json:"size_bytes"`
}

// BlobListResponse is one page of blobs.
type BlobListResponse struct {
	Blobs             []BlobListEntry `cbor:"blobs" json:"blobs"`
	Count             int             `cbor:"count" json:"count"`
	HasMore           bool            `cbor:"has_more" json:"has_more"`
	ContinuationToken string          `cbor:"token,omitempty" json:"continuation_token"`
}

// BlobStatusResponse describes one blob (spec 04 `blob status`).
type BlobStatusResponse struct {
	WasFound  bool     `cbor:"was_found" json:"was_found"`
	Hash      string   `cbor:"hash" json:"hash"`
	SizeBytes int64    `cbor:"size_bytes" json:"size_bytes"`
	Complete  bool     `cbor:"complete" json:"complete"`
	Tags      []string `cbor:"tags" json:"tags"`
	// ReplicaNodes are the IDs of the nodes that registered a copy.
	ReplicaNodes []uint64 `cbor:"replica_nodes" json:"replica_nodes"`
}

// BlobProtectRequest sets the user tag Tag (without "user:") on Hash. A tag
// names one blob: protecting another blob under the same tag moves it.
type BlobProtectRequest struct {
	Hash string `cbor:"hash" json:"hash"`
	Tag  string `cbor:"tag" json:"tag"`
}

// BlobUnprotectRequest removes the user tag Tag (without "user:").
type BlobUnprotectRequest struct {
	Tag string `cbor:"tag" json:"tag"`
}

// BlobDeleteRequest drops the user tags of Hash; the bytes go with garbage
// collection once nothing references the blob.
type BlobDeleteRequest struct {
	Hash  string `cbor:"hash" json:"hash"`
	Force bool   `cbor:"force,omitempty" json:"force,omitempty"`
}

// BlobTagResponse is the outcome of protect, unprotect and delete.
type BlobTagResponse struct {
	IsSuccess bool `cbor:"is_success" json:"is_success"`
	// Changed is false when there was nothing to do (tag already set or
	// already absent).
	Changed bool `cbor:"changed" json:"changed"`
}

// Replication statuses of a blob (spec 04 `blob replication-status`).
const (
	BlobHealthy         = "healthy"          // replicas >= factor
	BlobDegraded        = "degraded"         // min <= replicas < factor
	BlobUnderReplicated = "under_replicated" // 0 < replicas < min
	BlobCritical        = "critical"         // no replica
)

// Bounds of the replication policy.
const (
	MinBlobReplicationFactor = 1
	MaxBlobReplicationFactor = 7
)

// BlobPolicy is the cluster's replication and garbage-collection policy,
// kept in the key/value store. Zero fields take their defaults.
type BlobPolicy struct {
	// ReplicationFactor is how many nodes should hold each blob, 1..7;
	// 0: min(3, number of voters).
	ReplicationFactor int `cbor:"replication_factor,omitempty" json:"replication_factor"`
	// MinReplicas is the count below which a blob is under-replicated,
	// 1..ReplicationFactor; 0: min(2, factor).
	MinReplicas int `cbor:"min_replicas,omitempty" json:"min_replicas"`
	// RepairIntervalMs is how often the leader checks every blob's
	// replicas (default 30,000).
	RepairIntervalMs int64 `cbor:"repair_interval_ms,omitempty" json:"repair_interval_ms"`
	// GCIntervalMs is how often garbage is collected (default 60,000).
	GCIntervalMs int64 `cbor:"gc_interval_ms,omitempty" json:"gc_interval_ms"`
	// GCGraceMs is how long an untagged blob is kept after it was added
	// (default 300,000).
	GCGraceMs int64 `cbor:"gc_grace_ms,omitempty" json:"gc_grace_ms"`
}

// BlobPolicyRequest reads the policy, or replaces it when Set is true.
type BlobPolicyRequest struct {
	Set    bool       `cbor:"set,omitempty" json:"set,omitempty"`
	Policy BlobPolicy `cbor:"policy" json:"policy"`
}

// BlobPolicyResponse is the stored policy (zero fields: defaults) and the
// values in effect.
type BlobPolicyResponse struct {
	Stored    BlobPolicy `cbor:"stored" json:"stored"`
	Effective BlobPolicy `cbor:"effective" json:"effective"`
}

// BlobReplicationStatusResponse is spec 04 `blob replication-status`.
type BlobReplicationStatusResponse struct {
	WasFound  bool   `cbor:"was_found" json:"was_found"`
	Hash      string `cbor:"hash" json:"hash"`
	SizeBytes int64  `cbor:"size_bytes" json:"size_bytes"`
	// ReplicaNodes are the cluster members registered as holding a copy.
	ReplicaNodes      []uint64 `cbor:"replica_nodes" json:"replica_nodes"`
	ReplicationFactor int      `cbor:"replication_factor" json:"replication_factor"`
	MinReplicas       int      `cbor:"min_replicas" json:"min_replicas"`
	Status            string   `cbor:"status" json:"status"`
	ReplicasNeeded    int      `cbor:"replicas_needed" json:"replicas_needed"`
	UpdatedAt         int64    `cbor:"updated_at" json:"updated_at"` // ms since the epoch, latest replica change
}

// BlobRepairRequest copies a blob to nodes until it has ReplicationFactor
// reachable holders (0: the policy's), preferring Targets when given.
type BlobRepairRequest struct {
	Hash              string   `cbor:"hash" json:"hash"`
	Targets           []uint64 `cbor:"targets,omitempty" json:"targets,omitempty"`
	ReplicationFactor int      `cbor:"replication_factor,omitempty" json:"replication_factor,omitempty"`
}

// BlobRepairResponse lists the nodes that received a copy and those that
// failed to.
type BlobRepairResponse struct {
	SuccessfulNodes []uint64 `cbor:"successful_nodes" json:"successful_nodes"`
	FailedNodes     []uint64 `cbor:"failed_nodes" json:"failed_nodes"`
	DurationMs      int64    `cbor:"duration_ms" json:"duration_ms"`
}

// BlobRepairCycleResponse acknowledges a started repair pass.
type BlobRepairCycleResponse struct {
	IsSuccess bool `cbor:"is_success" json:"is_success"`
}

// BlobTicketRequest asks for a read capability of one blob that ends
// TTLMs milliseconds from now (0: never; at most MaxBlobTicketTTLMs).
type BlobTicketRequest struct {
	Hash  string `cbor:"hash" json:"hash"`
	TTLMs int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
}

// BlobTicketResponse is what a blob ticket holds: the addresses
// ("KEY@host:port,…") of the members holding the blob and a token that
// admits reading that blob only, until ExpiresMs (Unix ms; 0 never).
type BlobTicketResponse struct {
	Hash      string   `cbor:"hash" json:"hash"`
	ClusterID string   `cbor:"cluster_id" json:"cluster_id"`
	Holders   []string `cbor:"holders" json:"holders"`
	ExpiresMs int64    `cbor:"expires_ms,omitempty" json:"expires_ms,omitempty"`
	Token     []byte   `cbor:"token" json:"token"`
}

// BlobForgetRequest records that NodeID no longer holds the blob Hash (its
// copy was corrupt or removed).
type BlobForgetRequest struct {
	Hash   string `cbor:"hash" json:"hash"`
	NodeID uint64 `cbor:"node_id" json:"node_id"`
}
