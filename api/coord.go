package api

// Operation names of the coordination primitives (locks, counters,
// sequences, semaphores, rate limiters). Blocking variants (lock acquire,
// semaphore acquire, rate limiter acquire) are client-side loops over the
// try operations; see package coordination.
const (
	OpLockTryAcquire = "lock.try_acquire"
	OpLockRelease    = "lock.release"
	OpLockRenew      = "lock.renew"

	OpCounterGet = "counter.get"
	OpCounterAdd = "counter.add"
	OpCounterSub = "counter.sub"
	OpCounterSet = "counter.set"
	OpCounterCAS = "counter.cas"

	OpSignedCounterGet = "signed_counter.get"
	OpSignedCounterAdd = "signed_counter.add"

	OpSequenceNext    = "sequence.next"
	OpSequenceReserve = "sequence.reserve"
	OpSequenceCurrent = "sequence.current"

	OpSemaphoreTryAcquire = "semaphore.try_acquire"
	OpSemaphoreRelease    = "semaphore.release"
	OpSemaphoreStatus     = "semaphore.status"

	OpRateLimitTryAcquire = "ratelimit.try_acquire"
	OpRateLimitAvailable  = "ratelimit.available"
	OpRateLimitReset      = "ratelimit.reset"
)

// Limits of the coordination primitives.
const (
	MaxHolderIDSize       = 256           // bytes of a holder id
	MaxSemaphoreHolders   = 256           // live holders of one semaphore
	MaxSemaphoreCapacity  = 1_000_000     // permits of one semaphore
	MaxRateLimitCapacity  = 1_000_000_000 // tokens of one bucket
	MaxRateLimitPerSecond = 1_000_000_000 // refill rate, tokens per second
)

// ---- locks ----

// LockAcquireRequest asks for a lock on Key for HolderID during TTLMs
// milliseconds (leader clock).
type LockAcquireRequest struct {
	Key      string `cbor:"key" json:"key"`
	HolderID string `cbor:"holder_id" json:"holder_id"`
	TTLMs    int64  `cbor:"ttl_ms" json:"ttl_ms"`
}

// LockReleaseRequest releases a lock held by HolderID with FencingToken.
type LockReleaseRequest struct {
	Key          string `cbor:"key" json:"key"`
	HolderID     string `cbor:"holder_id" json:"holder_id"`
	FencingToken uint64 `cbor:"fencing_token" json:"fencing_token"`
}

// LockRenewRequest extends a held lock's deadline to now+TTLMs (TTLMs 0
// reuses the TTL of the acquisition).
type LockRenewRequest struct {
	Key          string `cbor:"key" json:"key"`
	HolderID     string `cbor:"holder_id" json:"holder_id"`
	FencingToken uint64 `cbor:"fencing_token" json:"fencing_token"`
	TTLMs        int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
}

// LockResponse is the answer of every lock operation. On success HolderID,
// FencingToken and DeadlineMs describe the caller's hold; when IsSuccess is
// false they describe the current holder (if any) and Error says why.
type LockResponse struct {
	Operation    string `cbor:"operation" json:"operation"`
	Key          string `cbor:"key" json:"key"`
	IsSuccess    bool   `cbor:"is_success" json:"is_success"`
	FencingToken uint64 `cbor:"fencing_token" json:"fencing_token"`
	HolderID     string `cbor:"holder_id" json:"holder_id"`
	DeadlineMs   int64  `cbor:"deadline_ms" json:"deadline_ms"` // unix ms, leader clock; 0 = not held
	Error        string `cbor:"error,omitempty" json:"error,omitempty"`
}

// ---- counters ----

// CounterRequest names a counter (get) and, for add and sub, an amount.
type CounterRequest struct {
	Key    string `cbor:"key" json:"key"`
	Amount uint64 `cbor:"amount,omitempty" json:"amount,omitempty"`
}

// CounterSetRequest sets a counter to Value.
type CounterSetRequest struct {
	Key   string `cbor:"key" json:"key"`
	Value uint64 `cbor:"value" json:"value"`
}

// CounterCASRequest sets a counter to NewValue if it holds Expected (a
// missing counter holds 0).
type CounterCASRequest struct {
	Key      string `cbor:"key" json:"key"`
	Expected uint64 `cbor:"expected" json:"expected"`
	NewValue uint64 `cbor:"new_value" json:"new_value"`
}

// CounterResponse is the answer of every unsigned counter operation: the
// value after the operation (on a failed CAS: the current value).
type CounterResponse struct {
	Key       string `cbor:"key" json:"key"`
	Operation string `cbor:"operation" json:"operation"`
	IsSuccess bool   `cbor:"is_success" json:"is_success"`
	Value     uint64 `cbor:"value" json:"value"`
	Error     string `cbor:"error,omitempty" json:"error,omitempty"`
}

// SignedCounterRequest names a signed counter (get) and, for add, a delta.
type SignedCounterRequest struct {
	Key   string `cbor:"key" json:"key"`
	Delta int64  `cbor:"delta,omitempty" json:"delta,omitempty"`
}

// SignedCounterResponse is the answer of the signed counter operations.
type SignedCounterResponse struct {
	Key       string `cbor:"key" json:"key"`
	Operation string `cbor:"operation" json:"operation"`
	IsSuccess bool   `cbor:"is_success" json:"is_success"`
	Value     int64  `cbor:"value" json:"value"`
	Error     string `cbor:"error,omitempty" json:"error,omitempty"`
}

// ---- sequences ----

// SequenceRequest names a sequence; Count is the size of a reservation.
type SequenceRequest struct {
	Key   string `cbor:"key" json:"key"`
	Count uint64 `cbor:"count,omitempty" json:"count,omitempty"`
}

// SequenceResponse carries the ID handed out (next), the first ID of the
// reserved range [Value, Value+Count) (reserve) or the next ID that would
// be handed out (current).
type SequenceResponse struct {
	Key       string `cbor:"key" json:"key"`
	Operation string `cbor:"operation" json:"operation"`
	IsSuccess bool   `cbor:"is_success" json:"is_success"`
	Value     uint64 `cbor:"value" json:"value"`
	Count     uint64 `cbor:"count,omitempty" json:"count,omitempty"`
	Error     string `cbor:"error,omitempty" json:"error,omitempty"`
}

// ---- semaphores ----

// SemaphoreAcquireRequest asks for Permits (default 1) of a semaphore of
// Capacity permits for HolderID during TTLMs milliseconds (default 30000).
type SemaphoreAcquireRequest struct {
	Name     string `cbor:"name" json:"name"`
	HolderID string `cbor:"holder_id" json:"holder_id"`
	Permits  uint32 `cbor:"permits,omitempty" json:"permits,omitempty"`
	Capacity uint32 `cbor:"capacity" json:"capacity"`
	TTLMs    int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
}

// SemaphoreReleaseRequest returns Permits of HolderID (0 = all it holds).
type SemaphoreReleaseRequest struct {
	Name     string `cbor:"name" json:"name"`
	HolderID string `cbor:"holder_id" json:"holder_id"`
	Permits  uint32 `cbor:"permits,omitempty" json:"permits,omitempty"`
}

// SemaphoreStatusRequest names a semaphore.
type SemaphoreStatusRequest struct {
	Name string `cbor:"name" json:"name"`
}

// SemaphoreHolder is one live holder of a semaphore.
type SemaphoreHolder struct {
	HolderID   string `cbor:"holder_id" json:"holder_id"`
	Permits    uint32 `cbor:"permits" json:"permits"`
	DeadlineMs int64  `cbor:"deadline_ms" json:"deadline_ms"`
}

// SemaphoreResponse is the answer of every semaphore operation.
// PermitsAcquired is what the caller holds after the operation; Available
// the free permits; MaxPermits and CapacityPermits both the capacity (the
// two names of the original). RetryAfterMs, on a failed acquire, is when
// the first live holder expires.
type SemaphoreResponse struct {
	Operation       string            `cbor:"operation" json:"operation"`
	Name            string            `cbor:"name" json:"name"`
	IsSuccess       bool              `cbor:"is_success" json:"is_success"`
	PermitsAcquired uint32            `cbor:"permits_acquired" json:"permits_acquired"`
	Available       uint32            `cbor:"available" json:"available"`
	MaxPermits      uint32            `cbor:"max_permits" json:"max_permits"`
	CapacityPermits uint32            `cbor:"capacity_permits" json:"capacity_permits"`
	RetryAfterMs    int64             `cbor:"retry_after_ms" json:"retry_after_ms"`
	Holders         []SemaphoreHolder `cbor:"holders,omitempty" json:"holders,omitempty"`
	Error           string            `cbor:"error,omitempty" json:"error,omitempty"`
}

// ---- rate limiters ----

// RateLimitRequest names a token bucket of Capacity tokens refilled at
// RatePerSecond tokens per second; Tokens (default 1) is what try_acquire
// takes. Capacity and rate are given on every call.
type RateLimitRequest struct {
	Key           string  `cbor:"key" json:"key"`
	Tokens        uint64  `cbor:"tokens,omitempty" json:"tokens,omitempty"`
	Capacity      uint64  `cbor:"capacity" json:"capacity"`
	RatePerSecond float64 `cbor:"rate_per_second" json:"rate_per_second"`
}

// RateLimitResponse is the answer of every rate limiter operation.
// TokensRemaining is the whole tokens left; RetryAfterMs, when denied, is
// when enough tokens will have refilled.
type RateLimitResponse struct {
	Operation       string `cbor:"operation" json:"operation"`
	Key             string `cbor:"key" json:"key"`
	IsSuccess       bool   `cbor:"is_success" json:"is_success"`
	TokensRemaining uint64 `cbor:"tokens_remaining" json:"tokens_remaining"`
	RetryAfterMs    int64  `cbor:"retry_after_ms" json:"retry_after_ms"`
	Error           string `cbor:"error,omitempty" json:"error,omitempty"`
}
