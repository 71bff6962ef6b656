package coordination

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// CounterClient is what a Counter needs; *client.Client has it.
type CounterClient interface {
	CounterGet(context.Context, *api.CounterRequest) (*api.CounterResponse, error)
	CounterAdd(context.Context, *api.CounterRequest) (*api.CounterResponse, error)
	CounterSub(context.Context, *api.CounterRequest) (*api.CounterResponse, error)
	CounterSet(context.Context, *api.CounterSetRequest) (*api.CounterResponse, error)
	CounterCAS(context.Context, *api.CounterCASRequest) (*api.CounterResponse, error)
}

// Counter is a named unsigned counter, 0..2^64-1: adds saturate at the top,
// subtractions at 0. A counter never written reads 0. Adds within the int64
// range are one atomic add in the state machine, so contention costs no
// retries.
type Counter struct {
	c    CounterClient
	name string
}

// NewCounter returns a handle on the counter name.
func NewCounter(c CounterClient, name string) *Counter { return &Counter{c: c, name: name} }

// Get returns the value.
func (k *Counter) Get(ctx context.Context) (uint64, error) {
	return value(k.c.CounterGet(ctx, &api.CounterRequest{Key: k.name}))
}

// Add adds n and returns the new value.
func (k *Counter) Add(ctx context.Context, n uint64) (uint64, error) {
	return value(k.c.CounterAdd(ctx, &api.CounterRequest{Key: k.name, Amount: n}))
}

// Sub subtracts n (stopping at 0) and returns the new value.
func (k *Counter) Sub(ctx context.Context, n uint64) (uint64, error) {
	return value(k.c.CounterSub(ctx, &api.CounterRequest{Key: k.name, Amount: n}))
}

// Incr adds 1.
func (k *Counter) Incr(ctx context.Context) (uint64, error) { return k.Add(ctx, 1) }

// Decr subtracts 1 (a counter at 0 stays 0).
func (k *Counter) Decr(ctx context.Context) (uint64, error) { return k.Sub(ctx, 1) }

// Set sets the value.
func (k *Counter) Set(ctx context.Context, v uint64) error {
	_, err := k.c.CounterSet(ctx, &api.CounterSetRequest{Key: k.name, Value: v})
	return err
}

// CompareAndSwap sets the value to new if it is old. It returns whether it
// did and the value now held.
func (k *Counter) CompareAndSwap(ctx context.Context, old, new uint64) (bool, uint64, error) {
	resp, err := k.c.CounterCAS(ctx, &api.CounterCASRequest{Key: k.name, Expected: old, NewValue: new})
	if err != nil {
		return false, 0, err
	}
	return resp.IsSuccess, resp.Value, nil
}

func value(resp *api.CounterResponse, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

// SignedCounterClient is what a SignedCounter needs; *client.Client has it.
type SignedCounterClient interface {
	SignedCounterGet(context.Context, *api.SignedCounterRequest) (*api.SignedCounterResponse, error)
	SignedCounterAdd(context.Context, *api.SignedCounterRequest) (*api.SignedCounterResponse, error)
}

// SignedCounter is a named int64 counter (kept apart from unsigned counters
// of the same name). An add that would leave int64 fails and changes
// nothing.
type SignedCounter struct {
	c    SignedCounterClient
	name string
}

// NewSignedCounter returns a handle on the signed counter name.
func NewSignedCounter(c SignedCounterClient, name string) *SignedCounter {
	return &SignedCounter{c: c, name: name}
}

// Get returns the value.
func (k *SignedCounter) Get(ctx context.Context) (int64, error) {
	resp, err := k.c.SignedCounterGet(ctx, &api.SignedCounterRequest{Key: k.name})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

// Add adds delta (possibly negative) and returns the new value.
func (k *SignedCounter) Add(ctx context.Context, delta int64) (int64, error) {
	resp, err := k.c.SignedCounterAdd(ctx, &api.SignedCounterRequest{Key: k.name, Delta: delta})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}
