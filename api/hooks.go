package api

// Operation names of the hook (event) system. See package internal/hooks
// for the event types, subjects and delivery semantics.
const (
	OpHookList    = "hook.list"
	OpHookAdd     = "hook.add"
	OpHookRemove  = "hook.remove"
	OpHookTrigger = "hook.trigger"
	OpHookMetrics = "hook.metrics"
)

// Limits of the hook system.
const (
	MaxHookHandlers      = 64     // handlers stored in one cluster
	MaxHookPatternSize   = 256    // bytes of a subject pattern
	MaxHookNameSize      = 64     // bytes of a handler name ([A-Za-z0-9_-])
	MaxHookCommandSize   = 4096   // bytes of a shell command
	MaxHookURLSize       = 2048   // bytes of a webhook URL
	MaxHookPayloadSize   = 4096   // bytes of a trigger payload
	MaxHookTimeoutMs     = 30_000 // per attempt
	DefaultHookTimeoutMs = 5_000
	MaxHookRetries       = 5 // retries after the first attempt
	DefaultHookRetries   = 3
	MaxHookOutputSize    = 64 << 10 // bytes of shell output kept
)

// Hook handler types.
const (
	HookInProcess = "in_process" // a Go function registered in the node process
	HookShell     = "shell"      // sh -c Command, the event in the environment
	HookWebhook   = "webhook"    // HTTP POST of the event JSON to URL, signed
)

// HookHandler is the configuration of one handler, as stored in the cluster
// (key _system:hooks:handlers:<name>), sent by hook.add and read from the
// [[hooks]] tables of the node's TOML config.
type HookHandler struct {
	Name    string `cbor:"name" json:"name" toml:"name"`
	Pattern string `cbor:"pattern" json:"pattern" toml:"pattern"` // NATS-style: '*' one segment, '>' the rest
	Type    string `cbor:"type" json:"type" toml:"type"`          // in_process | shell | webhook
	Command string `cbor:"command,omitempty" json:"command,omitempty" toml:"command"`
	URL     string `cbor:"url,omitempty" json:"url,omitempty" toml:"url"`
	// Secret keys the HMAC-SHA256 of a webhook body sent in the
	// X-Aspen-Signature header. It is never returned by hook.list.
	Secret string `cbor:"secret,omitempty" json:"secret,omitempty" toml:"secret"`
	// TimeoutMs bounds one attempt (0 = DefaultHookTimeoutMs, at most MaxHookTimeoutMs).
	TimeoutMs int64 `cbor:"timeout_ms,omitempty" json:"timeout_ms,omitempty" toml:"timeout_ms"`
	// RetryCount is the number of retries after a failed attempt (nil =
	// DefaultHookRetries, at most MaxHookRetries); backoff 100 ms ×2 up to 10 s.
	RetryCount *int `cbor:"retry_count,omitempty" json:"retry_count,omitempty" toml:"retry_count"`
	// Enabled is false to keep a handler without firing it (nil = true).
	Enabled *bool `cbor:"enabled,omitempty" json:"enabled,omitempty" toml:"enabled"`
}

// HookHandlerInfo is a handler as listed by hook.list (no secret).
type HookHandlerInfo struct {
	Name          string `cbor:"name" json:"name"`
	Pattern       string `cbor:"pattern" json:"pattern"`
	HandlerType   string `cbor:"handler_type" json:"handler_type"`
	ExecutionMode string `cbor:"execution_mode" json:"execution_mode"` // always "direct"
	IsEnabled     bool   `cbor:"is_enabled" json:"is_enabled"`
	TimeoutMs     int64  `cbor:"timeout_ms" json:"timeout_ms"`
	RetryCount    int    `cbor:"retry_count" json:"retry_count"`
	Command       string `cbor:"command,omitempty" json:"command,omitempty"`
	URL           string `cbor:"url,omitempty" json:"url,omitempty"`
	HasSecret     bool   `cbor:"has_secret,omitempty" json:"has_secret,omitempty"`
}

// HookListRequest asks for the stored handlers.
type HookListRequest struct{}

// HookListResponse lists the handlers in name order.
type HookListResponse struct {
	IsEnabled bool              `cbor:"is_enabled" json:"is_enabled"`
	Handlers  []HookHandlerInfo `cbor:"handlers" json:"handlers"`
}

// HookAddRequest stores a handler; Replace allows overwriting one of the
// same name (else CONFLICT).
type HookAddRequest struct {
	Handler HookHandler `cbor:"handler" json:"handler"`
	Replace bool        `cbor:"replace,omitempty" json:"replace,omitempty"`
}

// HookRemoveRequest deletes the handler Name (NOT_FOUND when absent).
type HookRemoveRequest struct {
	Name string `cbor:"name" json:"name"`
}

// HookResponse acknowledges hook.add and hook.remove.
type HookResponse struct {
	Name     string `cbor:"name" json:"name"`
	Revision uint64 `cbor:"revision" json:"revision"`
}

// HookTriggerRequest fires a synthetic event of EventType (a snake_case
// name such as write_committed) with Payload (JSON; empty = {}).
type HookTriggerRequest struct {
	EventType string `cbor:"event_type" json:"event_type"`
	Payload   []byte `cbor:"payload,omitempty" json:"payload,omitempty"`
}

// HookTriggerResponse says how many handlers the event was dispatched to
// and which of them failed (after their retries).
type HookTriggerResponse struct {
	IsSuccess       bool     `cbor:"is_success" json:"is_success"`
	DispatchedCount int      `cbor:"dispatched_count" json:"dispatched_count"`
	HandlerFailures []string `cbor:"handler_failures" json:"handler_failures"`
	EventID         string   `cbor:"event_id,omitempty" json:"event_id,omitempty"` // the synthetic event's ID ("t-…")
}

// HookMetricsRequest asks for the leader's delivery counters, of one
// handler when Handler is set.
type HookMetricsRequest struct {
	Handler string `cbor:"handler,omitempty" json:"handler,omitempty"`
}

// HookHandlerMetrics counts the deliveries of one handler since the node
// became leader (counters are in memory and restart at zero).
type HookHandlerMetrics struct {
	Name         string `cbor:"name" json:"name"`
	Fired        uint64 `cbor:"fired" json:"fired"`         // events dispatched to it
	Succeeded    uint64 `cbor:"succeeded" json:"succeeded"` // delivered (possibly after retries)
	Failed       uint64 `cbor:"failed" json:"failed"`       // failed after every retry
	Attempts     uint64 `cbor:"attempts" json:"attempts"`   // deliveries tried, retries included
	AvgLatencyMs int64  `cbor:"avg_latency_ms" json:"avg_latency_ms"`
	LastError    string `cbor:"last_error,omitempty" json:"last_error,omitempty"`
}

// HookMetricsResponse is the answer of hook.metrics.
type HookMetricsResponse struct {
	TotalEventsProcessed uint64               `cbor:"total_events_processed" json:"total_events_processed"`
	Handlers             []HookHandlerMetrics `cbor:"handlers" json:"handlers"`
}

// Hook URLs: shareable strings ("aspenhook…") that let a program without a
// cluster ticket fire one event type. They are served on their own ALPN,
// which admits no other operation.
const (
	ALPNHook         = "aspen/hook/1"
	OpHookCreateURL  = "hook.create_url"
	OpHookTriggerURL = "hook.trigger_url" // the only op of ALPNHook
)

// HookCreateURLRequest asks for a hook URL firing EventType (one of the ten
// core types) with Payload (JSON, default {}) as its default payload, valid
// for ExpiresHours hours (0 = never).
type HookCreateURLRequest struct {
	EventType    string `cbor:"event_type" json:"event_type"`
	Payload      []byte `cbor:"payload,omitempty" json:"payload,omitempty"`
	ExpiresHours int64  `cbor:"expires_hours" json:"expires_hours"`
	RelayURL     string `cbor:"relay_url,omitempty" json:"relay_url,omitempty"`
}

// HookCreateURLResponse is a new hook URL and what it holds.
type HookCreateURLResponse struct {
	URL       string `cbor:"url" json:"url"`
	EventType string `cbor:"event_type" json:"event_type"`
	Expires   int64  `cbor:"expires" json:"expires"` // unix seconds; 0 = never
	ClusterID string `cbor:"cluster_id" json:"cluster_id"`
	PeerCount int    `cbor:"peer_count" json:"peer_count"`
}

// HookTriggerURLRequest fires the event of the hook URL whose token is
// Token, with Payload (JSON) or, when empty, the URL's default payload.
type HookTriggerURLRequest struct {
	Token   []byte `cbor:"token" json:"token"`
	Payload []byte `cbor:"payload,omitempty" json:"payload,omitempty"`
}

// OpHookPublish records node events (snapshots, health, blobs, ...) in the
// replicated history, from which the leader fires them exactly like KV
// events. Nodes call it on the leader for events they observed; it is not
// meant for applications (they use hook.trigger).
const OpHookPublish = "hook.publish"

// MaxHookPublishEvents is the most events one hook.publish records.
const MaxHookPublishEvents = 16

// HookPublishedEvent is one event recorded by hook.publish.
type HookPublishedEvent struct {
	EventType string `cbor:"event_type" json:"event_type"`
	Payload   []byte `cbor:"payload,omitempty" json:"payload,omitempty"` // JSON, at most MaxHookPayloadSize bytes
	NodeID    uint64 `cbor:"node_id" json:"node_id"`                     // the node that observed it
	TimeMs    int64  `cbor:"time_ms" json:"time_ms"`                     // when it was observed, unix ms
}

// HookPublishRequest records Events, in order, in one revision.
type HookPublishRequest struct {
	Events []HookPublishedEvent `cbor:"events" json:"events"`
}

// HookPublishResponse is the revision that recorded the events.
type HookPublishResponse struct {
	Revision uint64 `cbor:"revision" json:"revision"`
}
