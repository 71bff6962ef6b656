package bench

import (
	"context"
	"errors"

	"github.com/aspen-dev/aspen/api"
)

// AspenAPI is what AspenConn needs from an Aspen connection; *client.Client
// implements it.
type AspenAPI interface {
	Get(context.Context, *api.GetRequest) (*api.GetResponse, error)
	Put(context.Context, *api.PutRequest) (*api.PutResponse, error)
	CAS(context.Context, *api.CASRequest) (*api.CASResponse, error)
	Scan(context.Context, *api.ScanRequest) (*api.ScanResponse, error)
	BatchWrite(context.Context, *api.BatchWriteRequest) (*api.BatchWriteResponse, error)
}

// AspenConn adapts an Aspen connection to Conn.
func AspenConn(c AspenAPI) Conn { return aspenConn{c} }

type aspenConn struct{ c AspenAPI }

var _ Conn = aspenConn{}

func consistency(stale bool) api.Consistency {
	if stale {
		return api.Stale
	}
	return api.Linearizable
}

func (a aspenConn) Put(ctx context.Context, key, value []byte) error {
	_, err := a.c.Put(ctx, &api.PutRequest{Key: key, Value: value})
	return err
}

func (a aspenConn) Get(ctx context.Context, key []byte, stale bool) error {
	_, err := a.c.Get(ctx, &api.GetRequest{Key: key, Consistency: consistency(stale)})
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	return err
}

func (a aspenConn) CAS(ctx context.Context, key, expected, value []byte) (bool, []byte, error) {
	resp, err := a.c.CAS(ctx, &api.CASRequest{Key: key, Expected: expected, NewValue: value})
	if err != nil {
		return false, nil, err
	}
	if resp.Succeeded {
		return true, nil, nil
	}
	if resp.Actual == nil {
		return false, nil, nil
	}
	return false, resp.Actual.Value, nil
}

func (a aspenConn) Scan(ctx context.Context, prefix []byte, limit int, stale bool) (int, error) {
	resp, err := a.c.Scan(ctx, &api.ScanRequest{Prefix: prefix, Limit: limit, Consistency: consistency(stale)})
	if err != nil {
		return 0, err
	}
	return len(resp.Entries), nil
}

func (a aspenConn) BatchPut(ctx context.Context, keys, values [][]byte) error {
	ops := make([]api.WriteOp, len(keys))
	for i := range keys {
		ops[i] = api.WriteOp{Kind: api.WriteSet, Key: keys[i], Value: values[i]}
	}
	_, err := a.c.BatchWrite(ctx, &api.BatchWriteRequest{Ops: ops})
	return err
}
