package rpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// noticedLate is a context whose deadline passed but which has not noticed.
type noticedLate struct{ context.Context }

func (noticedLate) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestWithCauseStreamDeadline: a stream cut by its deadline (the call's
// context's) reports context.DeadlineExceeded even before the context
// noticed, so callers can tell a timeout from a broken node.
func TestWithCauseStreamDeadline(t *testing.T) {
	streamErr := fmt.Errorf("reading frame header: %w", os.ErrDeadlineExceeded)
	if err := withCause(noticedLate{context.Background()}, streamErr); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("withCause = %v; want both deadline errors", err)
	}
	// without a deadline on the context, a stream timeout is the stream's own
	if err := withCause(context.Background(), streamErr); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("withCause without a context deadline = %v; want no context error", err)
	}
}
