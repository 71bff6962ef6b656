package api

import (
	"encoding/json"
	"unicode/utf8"
)

// Operation names of the queues. Blocking dequeue is a client-side loop
// over dequeue (see package coordination).
const (
	OpQueueCreate  = "queue.create"
	OpQueueDelete  = "queue.delete"
	OpQueueEnqueue = "queue.enqueue"
	OpQueueDequeue = "queue.dequeue"
	OpQueuePeek    = "queue.peek"
	OpQueueAck     = "queue.ack"
	OpQueueNack    = "queue.nack"
	OpQueueExtend  = "queue.extend"
	OpQueueStatus  = "queue.status"
	OpQueueDLQ     = "queue.dlq"
	OpQueueRedrive = "queue.redrive"
)

// Limits and defaults of the queues.
const (
	MaxQueueBatch            = 100     // items per enqueue, dequeue, peek or dlq call
	MaxQueuePayload          = 1 << 20 // bytes of one payload
	DefaultQueueVisibilityMs = 30000
	DefaultQueueMaxAttempts  = 3
	MaxQueueGroupSize        = 256 // bytes of a message group or dedup id
	DefaultQueuePeekMax      = 10
	QueueDedupWindowMs       = 5 * 60 * 1000 // how long a dedup id is remembered
)

// QueueCreateRequest creates a queue (or updates the settings of an
// existing one). Zero values take the defaults: visibility 30000 ms, no
// TTL, 3 attempts. MaxAttempts -1 means unlimited.
type QueueCreateRequest struct {
	Name                string `cbor:"name" json:"name"`
	VisibilityTimeoutMs int64  `cbor:"visibility_timeout_ms,omitempty" json:"visibility_timeout_ms,omitempty"`
	TTLMs               int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
	MaxAttempts         int64  `cbor:"max_attempts,omitempty" json:"max_attempts,omitempty"`
}

// QueueNewItem is one item to enqueue. TTLMs 0 takes the queue's TTL (0 =
// none); Group orders items per message group; a DedupID seen within five
// minutes returns the first item's id and enqueues nothing.
type QueueNewItem struct {
	Payload []byte `cbor:"payload" json:"payload"`
	TTLMs   int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
	Group   string `cbor:"group,omitempty" json:"group,omitempty"`
	DedupID string `cbor:"dedup_id,omitempty" json:"dedup_id,omitempty"`
}

// QueueEnqueueRequest enqueues Items (1..MaxQueueBatch) in order. A missing
// queue is created with the defaults.
type QueueEnqueueRequest struct {
	Name  string         `cbor:"name" json:"name"`
	Items []QueueNewItem `cbor:"items" json:"items"`
}

// QueueDequeueRequest takes up to Max (default 1) visible items for
// Consumer, hiding them for VisibilityMs (0: the queue's timeout).
type QueueDequeueRequest struct {
	Name         string `cbor:"name" json:"name"`
	Consumer     string `cbor:"consumer" json:"consumer"`
	Max          int    `cbor:"max,omitempty" json:"max,omitempty"`
	VisibilityMs int64  `cbor:"visibility_ms,omitempty" json:"visibility_ms,omitempty"`
}

// QueueReceiptRequest names one delivery (ack, nack, extend).
type QueueReceiptRequest struct {
	Name          string `cbor:"name" json:"name"`
	ReceiptHandle string `cbor:"receipt_handle" json:"receipt_handle"`
	ToDLQ         bool   `cbor:"to_dlq,omitempty" json:"to_dlq,omitempty"` // nack
	Error         string `cbor:"error,omitempty" json:"error,omitempty"`   // nack: why
	AddMs         int64  `cbor:"add_ms,omitempty" json:"add_ms,omitempty"` // extend
}

// QueueRequest names a queue (delete, status, peek, dlq, redrive).
type QueueRequest struct {
	Name   string `cbor:"name" json:"name"`
	Max    int    `cbor:"max,omitempty" json:"max,omitempty"`         // peek, dlq
	ItemID uint64 `cbor:"item_id,omitempty" json:"item_id,omitempty"` // redrive
}

// QueueItem is an item as dequeue, peek and dlq show it.
type QueueItem struct {
	ItemID           uint64 `cbor:"item_id" json:"item_id"`
	Payload          []byte `cbor:"payload" json:"payload"`
	ReceiptHandle    string `cbor:"receipt_handle,omitempty" json:"receipt_handle,omitempty"`
	DeliveryAttempts int64  `cbor:"delivery_attempts" json:"delivery_attempts"`
	Group            string `cbor:"group,omitempty" json:"group,omitempty"`
	EnqueuedAtMs     int64  `cbor:"enqueued_at_ms" json:"enqueued_at_ms"`
	VisibleAtMs      int64  `cbor:"visible_at_ms,omitempty" json:"visible_at_ms,omitempty"` // dequeue: visibility deadline
	LastError        string `cbor:"last_error,omitempty" json:"last_error,omitempty"`
}

// MarshalJSON writes the payload as a string when it is valid UTF-8.
func (it QueueItem) MarshalJSON() ([]byte, error) {
	type plain QueueItem
	if !utf8.Valid(it.Payload) {
		return json.Marshal(plain(it))
	}
	return json.Marshal(struct {
		plain
		Payload string `json:"payload"`
	}{plain(it), string(it.Payload)})
}

// QueueResponse is the answer of every queue operation; the fields that do
// not apply to the operation are zero.
type QueueResponse struct {
	Operation    string      `cbor:"operation" json:"operation"`
	Name         string      `cbor:"name" json:"name"`
	IsSuccess    bool        `cbor:"is_success" json:"is_success"`
	ItemID       uint64      `cbor:"item_id,omitempty" json:"item_id,omitempty"`     // enqueue: the first item
	ItemIDs      []uint64    `cbor:"item_ids,omitempty" json:"item_ids,omitempty"`   // enqueue
	Duplicate    bool        `cbor:"duplicate,omitempty" json:"duplicate,omitempty"` // enqueue of one item: dedup hit
	Items        []QueueItem `cbor:"items,omitempty" json:"items,omitempty"`
	ItemsDeleted int64       `cbor:"items_deleted,omitempty" json:"items_deleted,omitempty"`
	VisibleCount int64       `cbor:"visible_count" json:"visible_count"`
	PendingCount int64       `cbor:"pending_count" json:"pending_count"`
	DLQCount     int64       `cbor:"dlq_count" json:"dlq_count"`
	VisibleAtMs  int64       `cbor:"visible_at_ms,omitempty" json:"visible_at_ms,omitempty"` // extend
	MovedToDLQ   bool        `cbor:"moved_to_dlq,omitempty" json:"moved_to_dlq,omitempty"`   // nack
	Error        string      `cbor:"error,omitempty" json:"error,omitempty"`
}
