package coordination

import (
	"context"
	"errors"
	"fmt"

	"github.com/aspen-dev/aspen/api"
)

// SequenceClient is what a Sequence needs; *client.Client has it.
type SequenceClient interface {
	SequenceNext(context.Context, *api.SequenceRequest) (*api.SequenceResponse, error)
	SequenceReserve(context.Context, *api.SequenceRequest) (*api.SequenceResponse, error)
	SequenceCurrent(context.Context, *api.SequenceRequest) (*api.SequenceResponse, error)
}

// ErrExhausted: a sequence has handed out its last ID (2^63-1).
var ErrExhausted = errors.New("coordination: sequence exhausted")

// Sequence is a named generator of IDs 1, 2, 3…, unique and consecutive
// across all clients and nodes (no gaps, no duplicates).
type Sequence struct {
	c    SequenceClient
	name string
}

// NewSequence returns a handle on the sequence name.
func NewSequence(c SequenceClient, name string) *Sequence { return &Sequence{c: c, name: name} }

// Next returns the next ID.
func (s *Sequence) Next(ctx context.Context) (uint64, error) {
	return s.seq(s.c.SequenceNext(ctx, &api.SequenceRequest{Key: s.name}))
}

// Reserve takes n consecutive IDs and returns the first: the caller owns
// [start, start+n).
func (s *Sequence) Reserve(ctx context.Context, n uint64) (start uint64, err error) {
	return s.seq(s.c.SequenceReserve(ctx, &api.SequenceRequest{Key: s.name, Count: n}))
}

// Current returns the ID Next would return now, without taking it.
func (s *Sequence) Current(ctx context.Context) (uint64, error) {
	return s.seq(s.c.SequenceCurrent(ctx, &api.SequenceRequest{Key: s.name}))
}

func (s *Sequence) seq(resp *api.SequenceResponse, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	if !resp.IsSuccess {
		return 0, fmt.Errorf("%w: %q", ErrExhausted, s.name)
	}
	return resp.Value, nil
}
