package api

// Operation names of the key/value API.
const (
	OpKVGet              = "kv.get"
	OpKVPut              = "kv.put"
	OpKVDelete           = "kv.delete"
	OpKVCAS              = "kv.cas"
	OpKVCAD              = "kv.cad"
	OpKVScan             = "kv.scan"
	OpKVBatchRead        = "kv.batch_read"
	OpKVBatchWrite       = "kv.batch_write"
	OpKVConditionalBatch = "kv.conditional_batch"
	OpKVTxn              = "kv.txn"
)

// Limits of the key/value API, enforced at the edge and again in the state machine.
const (
	MaxKeySize       = 1024    // bytes
	MaxValueSize     = 1 << 20 // bytes
	MaxBatchOps      = 100     // operations (or compares) in one batch or transaction
	DefaultScanLimit = 1000    // keys per scan page when the request gives none
	MaxScanLimit     = 10000   // keys per scan page at most
	MaxTTLMs         = 10 * 365 * 24 * 3600 * 1000
)

// Consistency selects how a read is served.
type Consistency string

const (
	// Linearizable reads (the default, also when empty) are served by the leader
	// after it confirms its leadership and has applied everything committed when
	// the read started.
	Linearizable Consistency = "linearizable"
	// Stale reads are served from the local replica without coordination.
	Stale Consistency = "stale"
)

// KeyValue is a stored key with its metadata. Revisions are Raft log indexes.
type KeyValue struct {
	Key            []byte `cbor:"key" json:"key"`
	Value          []byte `cbor:"value" json:"value"`
	Version        int64  `cbor:"version" json:"version"`                                 // 1 on creation, +1 on every write
	CreateRevision uint64 `cbor:"create_revision" json:"create_revision"`                 // revision that created the key
	ModRevision    uint64 `cbor:"mod_revision" json:"mod_revision"`                       // revision of the last write
	ExpiresAtMs    int64  `cbor:"expires_at_ms,omitempty" json:"expires_at_ms,omitempty"` // unix ms; 0 = never
}

// GetRequest reads one key.
type GetRequest struct {
	Key         []byte      `cbor:"key" json:"key"`
	Consistency Consistency `cbor:"consistency,omitempty" json:"consistency,omitempty"`
}

// GetResponse holds the key, or a nil KV when it does not exist.
type GetResponse struct {
	KV       *KeyValue `cbor:"kv" json:"kv"`
	Revision uint64    `cbor:"revision" json:"revision"`
}

// PutRequest writes one key. TTLMs > 0 makes the key expire that many
// milliseconds after the leader accepts the write.
type PutRequest struct {
	Key   []byte `cbor:"key" json:"key"`
	Value []byte `cbor:"value" json:"value"`
	TTLMs int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
}

// PutResponse reports the revision of the write.
type PutResponse struct {
	Revision uint64 `cbor:"revision" json:"revision"`
}

// DeleteRequest deletes one key; deleting a missing key succeeds.
type DeleteRequest struct {
	Key []byte `cbor:"key" json:"key"`
}

// DeleteResponse says whether the key existed.
type DeleteResponse struct {
	Existed  bool   `cbor:"existed" json:"existed"`
	Revision uint64 `cbor:"revision" json:"revision"`
}

// CASRequest sets Key to NewValue if it currently holds Expected. With
// MustNotExist it instead succeeds only when the key is absent (Expected is
// then ignored).
type CASRequest struct {
	Key          []byte `cbor:"key" json:"key"`
	Expected     []byte `cbor:"expected" json:"expected"`
	MustNotExist bool   `cbor:"must_not_exist,omitempty" json:"must_not_exist,omitempty"`
	NewValue     []byte `cbor:"new_value" json:"new_value"`
}

// CASResponse reports whether the swap happened; on failure Actual is the
// current key (nil when missing) and nothing changed.
type CASResponse struct {
	Succeeded bool      `cbor:"succeeded" json:"succeeded"`
	Actual    *KeyValue `cbor:"actual" json:"actual"`
	Revision  uint64    `cbor:"revision" json:"revision"`
}

// CADRequest deletes Key only if it exists and holds exactly Expected.
type CADRequest struct {
	Key      []byte `cbor:"key" json:"key"`
	Expected []byte `cbor:"expected" json:"expected"`
}

// ScanRequest lists keys with Prefix in ascending byte order. Limit 0 means
// DefaultScanLimit. ContinuationToken, from a previous response, resumes
// strictly after the last key returned.
type ScanRequest struct {
	Prefix            []byte      `cbor:"prefix" json:"prefix"`
	Limit             int         `cbor:"limit,omitempty" json:"limit,omitempty"`
	ContinuationToken string      `cbor:"continuation_token,omitempty" json:"continuation_token,omitempty"`
	Consistency       Consistency `cbor:"consistency,omitempty" json:"consistency,omitempty"`
}

// ScanResponse is one page. ContinuationToken is empty exactly when no more
// keys with the prefix remain.
type ScanResponse struct {
	Entries           []KeyValue `cbor:"entries" json:"entries"`
	ContinuationToken string     `cbor:"continuation_token,omitempty" json:"continuation_token,omitempty"`
	Revision          uint64     `cbor:"revision" json:"revision"`
}

// BatchReadRequest reads up to MaxBatchOps keys at one revision.
type BatchReadRequest struct {
	Keys        [][]byte    `cbor:"keys" json:"keys"`
	Consistency Consistency `cbor:"consistency,omitempty" json:"consistency,omitempty"`
}

// BatchReadItem is one slot of a batch read, in request order; KV is nil when
// the key does not exist.
type BatchReadItem struct {
	Key []byte    `cbor:"key" json:"key"`
	KV  *KeyValue `cbor:"kv" json:"kv"`
}

// BatchReadResponse holds one item per requested key.
type BatchReadResponse struct {
	Results  []BatchReadItem `cbor:"results" json:"results"`
	Revision uint64          `cbor:"revision" json:"revision"`
}

// WriteOpKind names a write in a batch.
type WriteOpKind string

const (
	WriteSet    WriteOpKind = "set"
	WriteDelete WriteOpKind = "delete"
)

// WriteOp is one write of a batch.
type WriteOp struct {
	Kind  WriteOpKind `cbor:"kind" json:"kind"`
	Key   []byte      `cbor:"key" json:"key"`
	Value []byte      `cbor:"value,omitempty" json:"value,omitempty"`
	TTLMs int64       `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
}

// BatchWriteRequest applies all its writes atomically, as one command.
type BatchWriteRequest struct {
	Ops []WriteOp `cbor:"ops" json:"ops"`
}

// BatchWriteResponse reports how many operations were applied.
type BatchWriteResponse struct {
	OperationsApplied int    `cbor:"operations_applied" json:"operations_applied"`
	Revision          uint64 `cbor:"revision" json:"revision"`
}

// ConditionKind names a condition of a conditional batch.
type ConditionKind string

const (
	CondValueEquals  ConditionKind = "value_equals"
	CondKeyExists    ConditionKind = "key_exists"
	CondKeyNotExists ConditionKind = "key_not_exists"
)

// Condition is checked, in order, inside the state machine.
type Condition struct {
	Kind     ConditionKind `cbor:"kind" json:"kind"`
	Key      []byte        `cbor:"key" json:"key"`
	Expected []byte        `cbor:"expected,omitempty" json:"expected,omitempty"`
}

// ConditionalBatchRequest applies Ops only if every condition holds.
type ConditionalBatchRequest struct {
	Conditions []Condition `cbor:"conditions" json:"conditions"`
	Ops        []WriteOp   `cbor:"ops" json:"ops"`
}

// ConditionalBatchResponse reports the outcome; FailedConditionIndex is -1
// when all conditions held.
type ConditionalBatchResponse struct {
	ConditionsMet         bool   `cbor:"conditions_met" json:"conditions_met"`
	OperationsApplied     int    `cbor:"operations_applied" json:"operations_applied"`
	FailedConditionIndex  int    `cbor:"failed_condition_index" json:"failed_condition_index"`
	FailedConditionReason string `cbor:"failed_condition_reason,omitempty" json:"failed_condition_reason,omitempty"`
	Revision              uint64 `cbor:"revision" json:"revision"`
}

// CompareTarget is the field of a key a Compare inspects.
type CompareTarget string

const (
	TargetValue          CompareTarget = "value"
	TargetVersion        CompareTarget = "version" // 0 when the key does not exist
	TargetCreateRevision CompareTarget = "create_revision"
	TargetModRevision    CompareTarget = "mod_revision"
)

// CompareResult is the relation a Compare checks.
type CompareResult string

const (
	Equal    CompareResult = "="
	NotEqual CompareResult = "!="
	Less     CompareResult = "<"
	Greater  CompareResult = ">"
)

// Compare is one guard of a transaction: Target(Key) Result (Value|Number).
// A missing or expired key has version, create and mod revision 0 and never
// satisfies a value comparison.
type Compare struct {
	Key    []byte        `cbor:"key" json:"key"`
	Target CompareTarget `cbor:"target" json:"target"`
	Result CompareResult `cbor:"result" json:"result"`
	Value  []byte        `cbor:"value,omitempty" json:"value,omitempty"`   // for TargetValue
	Number int64         `cbor:"number,omitempty" json:"number,omitempty"` // for the other targets
}

// TxnOpKind names a transaction operation.
type TxnOpKind string

const (
	TxnPut         TxnOpKind = "put"
	TxnDelete      TxnOpKind = "delete"
	TxnDeleteRange TxnOpKind = "delete_range" // every key with prefix Key
	TxnGet         TxnOpKind = "get"
	TxnRange       TxnOpKind = "range" // keys with prefix Key, at most Limit (default DefaultScanLimit)
	TxnAdd         TxnOpKind = "add"   // Value holds a decimal int64 (missing = 0); adds Delta
)

// TxnOp is one operation of a transaction.
type TxnOp struct {
	Kind  TxnOpKind `cbor:"kind" json:"kind"`
	Key   []byte    `cbor:"key" json:"key"`
	Value []byte    `cbor:"value,omitempty" json:"value,omitempty"`
	TTLMs int64     `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
	Delta int64     `cbor:"delta,omitempty" json:"delta,omitempty"`
	Limit int       `cbor:"limit,omitempty" json:"limit,omitempty"`
}

// TxnRequest is the one write command of Aspen: if every compare holds,
// Success runs, else Failure runs — atomically, inside the state machine.
type TxnRequest struct {
	Compares []Compare `cbor:"compares,omitempty" json:"compares,omitempty"`
	Success  []TxnOp   `cbor:"success,omitempty" json:"success,omitempty"`
	Failure  []TxnOp   `cbor:"failure,omitempty" json:"failure,omitempty"`
}

// TxnOpResult is the outcome of one operation, in order.
type TxnOpResult struct {
	Kind    TxnOpKind  `cbor:"kind" json:"kind"`
	KVs     []KeyValue `cbor:"kvs,omitempty" json:"kvs,omitempty"`         // get (0 or 1 entries), range, add (the new value)
	Deleted int64      `cbor:"deleted,omitempty" json:"deleted,omitempty"` // delete, delete_range: keys removed
	More    bool       `cbor:"more,omitempty" json:"more,omitempty"`       // range: more keys remain
}

// TxnResponse reports which branch ran. FailedCompare is the index of the
// first compare that did not hold, or -1.
type TxnResponse struct {
	Succeeded     bool          `cbor:"succeeded" json:"succeeded"`
	FailedCompare int           `cbor:"failed_compare" json:"failed_compare"`
	Results       []TxnOpResult `cbor:"results,omitempty" json:"results,omitempty"`
	Revision      uint64        `cbor:"revision" json:"revision"`
}
