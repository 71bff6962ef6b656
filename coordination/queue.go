package coordination

import (
	"context"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// QueueClient is what a Queue needs from a cluster; *client.Client has it.
type QueueClient interface {
	QueueCreate(context.Context, *api.QueueCreateRequest) (*api.QueueResponse, error)
	QueueDelete(context.Context, *api.QueueRequest) (*api.QueueResponse, error)
	QueueEnqueue(context.Context, *api.QueueEnqueueRequest) (*api.QueueResponse, error)
	QueueDequeue(context.Context, *api.QueueDequeueRequest) (*api.QueueResponse, error)
	QueuePeek(context.Context, *api.QueueRequest) (*api.QueueResponse, error)
	QueueAck(context.Context, *api.QueueReceiptRequest) (*api.QueueResponse, error)
	QueueNack(context.Context, *api.QueueReceiptRequest) (*api.QueueResponse, error)
	QueueExtend(context.Context, *api.QueueReceiptRequest) (*api.QueueResponse, error)
	QueueStatus(context.Context, *api.QueueRequest) (*api.QueueResponse, error)
	QueueDLQ(context.Context, *api.QueueRequest) (*api.QueueResponse, error)
	QueueRedrive(context.Context, *api.QueueRequest) (*api.QueueResponse, error)
}

// Queue is a named FIFO queue with visibility timeouts, a dead-letter
// queue and per-group ordering. A consumer dequeues an item, which hides
// it for the visibility timeout, and acks it when done; an item not acked
// in time is delivered again.
type Queue struct {
	c    QueueClient
	name string
}

// NewQueue returns a handle on the queue name. It makes no call.
func NewQueue(c QueueClient, name string) *Queue { return &Queue{c: c, name: name} }

// refused turns a negative answer into an error.
func refused(op, name string, resp *api.QueueResponse) error {
	return fmt.Errorf("coordination: queue %q: %s: %s", name, op, resp.Error)
}

// Enqueue appends one item and returns its id (or, for a dedup id seen in
// the last five minutes, the original item's id).
func (q *Queue) Enqueue(ctx context.Context, item api.QueueNewItem) (uint64, error) {
	resp, err := q.c.QueueEnqueue(ctx, &api.QueueEnqueueRequest{Name: q.name, Items: []api.QueueNewItem{item}})
	if err != nil {
		return 0, err
	}
	if !resp.IsSuccess {
		return 0, refused("enqueue", q.name, resp)
	}
	return resp.ItemID, nil
}

// DequeueOptions configure a dequeue.
type DequeueOptions struct {
	Consumer   string        // consumer id (required)
	Max        int           // items at most (default 1)
	Visibility time.Duration // 0: the queue's visibility timeout
	// Wait, when positive, polls (jittered backoff) up to this long for
	// at least one item.
	Wait time.Duration
}

// Dequeue takes up to opts.Max visible items. With opts.Wait it waits for
// at least one; it returns no items (and no error) when none came.
func (q *Queue) Dequeue(ctx context.Context, opts DequeueOptions) ([]api.QueueItem, error) {
	req := &api.QueueDequeueRequest{Name: q.name, Consumer: opts.Consumer, Max: opts.Max, VisibilityMs: opts.Visibility.Milliseconds()}
	wctx := ctx
	if opts.Wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, opts.Wait)
		defer cancel()
	}
	var b backoff
	for {
		resp, err := q.c.QueueDequeue(ctx, req)
		if err != nil {
			return nil, err
		}
		if len(resp.Items) > 0 || opts.Wait <= 0 {
			return resp.Items, nil
		}
		if b.d == 0 {
			b.d = minBackoff
		}
		if err := b.wait(wctx, 0); err != nil {
			if ended(ctx) != nil {
				return nil, ended(ctx)
			}
			return nil, nil
		}
	}
}

// Ack deletes a delivered item; it fails when the receipt is stale (the
// item was delivered again after its visibility timeout).
func (q *Queue) Ack(ctx context.Context, receipt string) error {
	resp, err := q.c.QueueAck(ctx, &api.QueueReceiptRequest{Name: q.name, ReceiptHandle: receipt})
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return refused("ack", q.name, resp)
	}
	return nil
}

// Nack gives a delivered item back, or moves it to the DLQ when toDLQ or
// when it is out of attempts. It reports whether it went to the DLQ.
func (q *Queue) Nack(ctx context.Context, receipt string, toDLQ bool, reason string) (bool, error) {
	resp, err := q.c.QueueNack(ctx, &api.QueueReceiptRequest{Name: q.name, ReceiptHandle: receipt, ToDLQ: toDLQ, Error: reason})
	if err != nil {
		return false, err
	}
	if !resp.IsSuccess {
		return false, refused("nack", q.name, resp)
	}
	return resp.MovedToDLQ, nil
}

// Extend hides a pending item for add longer.
func (q *Queue) Extend(ctx context.Context, receipt string, add time.Duration) error {
	resp, err := q.c.QueueExtend(ctx, &api.QueueReceiptRequest{Name: q.name, ReceiptHandle: receipt, AddMs: add.Milliseconds()})
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return refused("extend", q.name, resp)
	}
	return nil
}

// Status counts the queue's visible, pending and dead-lettered items.
func (q *Queue) Status(ctx context.Context) (*api.QueueResponse, error) {
	resp, err := q.c.QueueStatus(ctx, &api.QueueRequest{Name: q.name})
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, refused("status", q.name, resp)
	}
	return resp, nil
}
