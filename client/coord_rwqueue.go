package client

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// RWLockTryRead takes a read hold if no writer holds or waits for the lock.
func (c *Client) RWLockTryRead(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	return call[api.RWLockResponse](ctx, c, api.OpRWLockTryRead, req)
}

// RWLockTryWrite takes the write hold if the lock is free.
func (c *Client) RWLockTryWrite(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	return call[api.RWLockResponse](ctx, c, api.OpRWLockTryWrite, req)
}

// RWLockReleaseRead drops a read hold.
func (c *Client) RWLockReleaseRead(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	return call[api.RWLockResponse](ctx, c, api.OpRWLockReleaseRead, req)
}

// RWLockReleaseWrite ends a write hold.
func (c *Client) RWLockReleaseWrite(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	return call[api.RWLockResponse](ctx, c, api.OpRWLockReleaseWrite, req)
}

// RWLockDowngrade turns a write hold into a read hold, keeping the token.
func (c *Client) RWLockDowngrade(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	return call[api.RWLockResponse](ctx, c, api.OpRWLockDowngrade, req)
}

// RWLockStatus describes a read/write lock.
func (c *Client) RWLockStatus(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	return call[api.RWLockResponse](ctx, c, api.OpRWLockStatus, req)
}

// QueueCreate creates a queue or updates its settings.
func (c *Client) QueueCreate(ctx context.Context, req *api.QueueCreateRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueCreate, req)
}

// QueueDelete deletes a queue and its items.
func (c *Client) QueueDelete(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueDelete, req)
}

// QueueEnqueue appends items to a queue.
func (c *Client) QueueEnqueue(ctx context.Context, req *api.QueueEnqueueRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueEnqueue, req)
}

// QueueDequeue takes visible items without waiting.
func (c *Client) QueueDequeue(ctx context.Context, req *api.QueueDequeueRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueDequeue, req)
}

// QueuePeek shows the items a dequeue would take.
func (c *Client) QueuePeek(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueuePeek, req)
}

// QueueAck deletes a delivered item.
func (c *Client) QueueAck(ctx context.Context, req *api.QueueReceiptRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueAck, req)
}

// QueueNack gives a delivered item back (or moves it to the DLQ).
func (c *Client) QueueNack(ctx context.Context, req *api.QueueReceiptRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueNack, req)
}

// QueueExtend extends a delivery's visibility timeout.
func (c *Client) QueueExtend(ctx context.Context, req *api.QueueReceiptRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueExtend, req)
}

// QueueStatus counts a queue's visible, pending and dead-lettered items.
func (c *Client) QueueStatus(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueStatus, req)
}

// QueueDLQ lists dead-lettered items.
func (c *Client) QueueDLQ(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueDLQ, req)
}

// QueueRedrive moves a dead-lettered item back to the queue.
func (c *Client) QueueRedrive(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	return call[api.QueueResponse](ctx, c, api.OpQueueRedrive, req)
}
