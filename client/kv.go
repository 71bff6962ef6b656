package client

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// Get reads one key; the response's KV is nil when the key does not exist.
func (c *Client) Get(ctx context.Context, req *api.GetRequest) (*api.GetResponse, error) {
	return call[api.GetResponse](ctx, c, api.OpKVGet, req)
}

// Put writes one key.
func (c *Client) Put(ctx context.Context, req *api.PutRequest) (*api.PutResponse, error) {
	return call[api.PutResponse](ctx, c, api.OpKVPut, req)
}

// Delete deletes one key and says whether it existed.
func (c *Client) Delete(ctx context.Context, req *api.DeleteRequest) (*api.DeleteResponse, error) {
	return call[api.DeleteResponse](ctx, c, api.OpKVDelete, req)
}

// CAS compares and swaps one key. A failed comparison is not an error:
// the response says Succeeded false and carries the actual key.
func (c *Client) CAS(ctx context.Context, req *api.CASRequest) (*api.CASResponse, error) {
	return call[api.CASResponse](ctx, c, api.OpKVCAS, req)
}

// CAD compares and deletes one key.
func (c *Client) CAD(ctx context.Context, req *api.CADRequest) (*api.CASResponse, error) {
	return call[api.CASResponse](ctx, c, api.OpKVCAD, req)
}

// Scan lists one page of keys with a prefix.
func (c *Client) Scan(ctx context.Context, req *api.ScanRequest) (*api.ScanResponse, error) {
	return call[api.ScanResponse](ctx, c, api.OpKVScan, req)
}

// BatchRead reads several keys at one revision.
func (c *Client) BatchRead(ctx context.Context, req *api.BatchReadRequest) (*api.BatchReadResponse, error) {
	return call[api.BatchReadResponse](ctx, c, api.OpKVBatchRead, req)
}

// BatchWrite applies sets and deletes atomically.
func (c *Client) BatchWrite(ctx context.Context, req *api.BatchWriteRequest) (*api.BatchWriteResponse, error) {
	return call[api.BatchWriteResponse](ctx, c, api.OpKVBatchWrite, req)
}

// ConditionalBatch applies writes only if all conditions hold.
func (c *Client) ConditionalBatch(ctx context.Context, req *api.ConditionalBatchRequest) (*api.ConditionalBatchResponse, error) {
	return call[api.ConditionalBatchResponse](ctx, c, api.OpKVConditionalBatch, req)
}

// Txn runs an etcd-style transaction.
func (c *Client) Txn(ctx context.Context, req *api.TxnRequest) (*api.TxnResponse, error) {
	return call[api.TxnResponse](ctx, c, api.OpKVTxn, req)
}
