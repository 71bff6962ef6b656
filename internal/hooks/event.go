package hooks

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// eventCategories maps each event type (the snake_case name of spec 05) to
// its category; its topic is "hooks.<category>.<type>".
var eventCategories = map[string]string{
	"write_committed": "kv", "delete_committed": "kv", "ttl_expired": "kv",
	"leader_elected": "cluster", "membership_changed": "cluster", "node_added": "cluster", "node_removed": "cluster",
	"snapshot_created": "system", "snapshot_installed": "system", "health_changed": "system",
	"blob_added": "blob", "blob_deleted": "blob", "blob_downloaded": "blob", "blob_protected": "blob", "blob_unprotected": "blob",
	"ref_updated": "forge", "patch_created": "forge", "patch_merged": "forge", "patch_closed": "forge",
	"patch_approved": "forge", "repo_created": "forge", "push_completed": "forge",
	"pipeline_started": "ci", "pipeline_completed": "ci", "pipeline_failed": "ci", "deploy_completed": "ci",
	"sync_started": "docs", "sync_completed": "docs", "entry_imported": "docs", "entry_exported": "docs",
}

// The event types fired by the node itself (the forge, CI and docs types
// are for the services that will publish them).
const (
	TypeWriteCommitted    = "write_committed"
	TypeDeleteCommitted   = "delete_committed"
	TypeTTLExpired        = "ttl_expired"
	TypeLeaderElected     = "leader_elected"
	TypeMembershipChanged = "membership_changed"
	TypeNodeAdded         = "node_added"
	TypeNodeRemoved       = "node_removed"
	TypeSnapshotCreated   = "snapshot_created"
	TypeSnapshotInstalled = "snapshot_installed"
	TypeHealthChanged     = "health_changed"
	TypeBlobAdded         = "blob_added"
	TypeBlobDeleted       = "blob_deleted"
	TypeBlobDownloaded    = "blob_downloaded"
	TypeBlobProtected     = "blob_protected"
	TypeBlobUnprotected   = "blob_unprotected"
)

// Topic returns the topic of an event type ("hooks.kv.write_committed"),
// or an error naming the type when it is unknown.
func Topic(eventType string) (string, error) {
	c, ok := eventCategories[eventType]
	if !ok {
		return "", fmt.Errorf("unknown event type %q: expected a snake_case name such as write_committed or leader_elected", eventType)
	}
	return "hooks." + c + "." + eventType, nil
}

// Event is one event delivered to handlers; its JSON form is what shell
// handlers find in $ASPEN_HOOK_EVENT and webhooks receive as the body.
type Event struct {
	// ID identifies the event for de-duplication: "<revision>-<index>" (the
	// Raft log index of the command that recorded it and its position among
	// that command's events) for every event fired from the replicated
	// history, "t-<random hex>" for a synthetic (triggered) one. A
	// redelivery after a leader failover carries the same ID.
	ID        string `json:"event_id"`
	EventType string `json:"event_type"`
	Topic     string `json:"topic"`
	// Subjects are the subjects the event is published on: its topic and,
	// for KV events, the key subject (see KeySubject). A handler fires once
	// if its pattern matches any of them.
	Subjects    []string        `json:"subjects"`
	LogIndex    uint64          `json:"log_index,omitempty"` // revision of a KV event
	Timestamp   time.Time       `json:"timestamp"`           // wall clock of the firing leader
	TimestampMs int64           `json:"timestamp_ms"`
	NodeID      uint64          `json:"node_id"` // the node that fired it
	Synthetic   bool            `json:"synthetic,omitempty"`
	Payload     json.RawMessage `json:"payload"`
}

// NewEvent builds an event of eventType with payload (JSON; nil = {}) and
// any extra subjects. It fails on an unknown type or invalid JSON.
func NewEvent(eventType string, payload []byte, nodeID uint64, extra ...string) (*Event, error) {
	topic, err := Topic(eventType)
	if err != nil {
		return nil, err
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		return nil, fmt.Errorf("event payload is not valid JSON")
	}
	now := time.Now().UTC()
	return &Event{
		EventType:   eventType,
		Topic:       topic,
		Subjects:    append([]string{topic}, extra...),
		Timestamp:   now,
		TimestampMs: now.UnixMilli(),
		NodeID:      nodeID,
		Payload:     json.RawMessage(payload),
	}, nil
}

// HistoryID is the ID of the event at position index among the events of
// revision rev of the replicated history.
func HistoryID(rev uint64, index int) string {
	return strconv.FormatUint(rev, 10) + "-" + strconv.Itoa(index)
}

// JSON returns the event's JSON encoding.
func (e *Event) JSON() []byte {
	b, err := json.Marshal(e)
	if err != nil { // only RawMessage could fail, and it was validated
		return []byte(`{"error":"event not encodable"}`)
	}
	return b
}

// KeySubject maps a KV key to the key subject of a put or delete
// (kind "put" or "delete"): "kv.<kind>.<segments>", the key split on '/'
// and ':' into segments, in which every byte other than a letter, digit,
// '-' or '_' becomes '_' and an empty segment becomes '_'. So a put of
// "users/42:name" is published on "kv.put.users.42.name", and the pattern
// "kv.*.users.>" matches every change under "users/". The mapping is lossy
// (both "a.b" and "a b" become "a_b"); the payload carries the exact key.
func KeySubject(kind string, key []byte) string {
	var b strings.Builder
	b.WriteString("kv.")
	b.WriteString(kind)
	b.WriteByte('.')
	empty := true
	for _, c := range key {
		switch {
		case c == '/' || c == ':':
			if empty {
				b.WriteByte('_')
			}
			b.WriteByte('.')
			empty = true
			continue
		case segmentByte(c):
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
		empty = false
	}
	if empty {
		b.WriteByte('_')
	}
	return b.String()
}

// KVPayload is the payload of write_committed and delete_committed events.
// Key and values are strings when valid UTF-8, else base64 with Encoding
// "base64".
type KVPayload struct {
	Key       string  `json:"key"`
	Value     *string `json:"value,omitempty"`
	PrevValue *string `json:"prev_value,omitempty"`
	Revision  uint64  `json:"revision"`
	Encoding  string  `json:"encoding,omitempty"`
}

// NewKVPayload builds the payload of a KV event (value nil for a delete).
func NewKVPayload(key, value, prev []byte, hasPrev bool, revision uint64) []byte {
	bin := !utf8.Valid(key) || !utf8.Valid(value) || hasPrev && !utf8.Valid(prev)
	enc := func(b []byte) string {
		if bin {
			return base64.StdEncoding.EncodeToString(b)
		}
		return string(b)
	}
	p := KVPayload{Key: enc(key), Revision: revision}
	if value != nil {
		v := enc(value)
		p.Value = &v
	}
	if hasPrev {
		v := enc(prev)
		p.PrevValue = &v
	}
	if bin {
		p.Encoding = "base64"
	}
	b, _ := json.Marshal(p)
	return b
}
