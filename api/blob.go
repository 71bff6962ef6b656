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
