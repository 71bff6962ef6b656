package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
)

// coordRemote is what the coordination commands need from a connection;
// *client.Client has it.
type coordRemote interface {
	coordination.LockClient
	coordination.CounterClient
	coordination.SignedCounterClient
	coordination.SequenceClient
	coordination.SemaphoreClient
	coordination.RateLimitClient
	coordination.RWLockClient
	coordination.QueueClient
	coordination.BarrierClient
	coordination.ServiceClient
	coordination.LeaseClient
	coordination.LockSetClient
	coordination.ElectionClient
}

// withCoord is withRemote for the coordination commands.
func (a *app) withCoord(f func(coordRemote) error) error {
	return a.withRemote(func(r remote) error {
		c, ok := r.(coordRemote)
		if !ok {
			return fmt.Errorf("this connection does not support coordination operations")
		}
		return f(c)
	})
}

// newCoordCmds returns the command groups of the coordination primitives.
func (a *app) newCoordCmds() []*cobra.Command {
	return []*cobra.Command{a.newLockCmd(), a.newCounterCmd(), a.newSequenceCmd(), a.newSemaphoreCmd(), a.newRateLimitCmd(), a.newRWLockCmd(), a.newQueueCmd(), a.newBarrierCmd(), a.newServiceCmd(), a.newLeaseCmd(), a.newElectionCmd()}
}

// msValue is a flag holding milliseconds, given as a bare number of
// milliseconds or as a duration (5s, 2m).
type msValue int64

func (m *msValue) String() string { return fmt.Sprint(int64(*m)) }
func (m *msValue) Type() string   { return "ms" }
func (m *msValue) Set(s string) error {
	d, err := parseTimeout(s)
	if err != nil {
		return err
	}
	if d < time.Millisecond {
		return errors.New("must be at least 1ms")
	}
	*m = msValue(d.Milliseconds())
	return nil
}

// waitFlag registers the local --timeout (milliseconds to wait for a
// blocking acquire). It shadows the global --timeout for that command.
func waitFlag(cmd *cobra.Command, v *msValue) {
	*v = 5000
	cmd.Flags().Var(v, "timeout", "how long to wait, in milliseconds or as a duration (5s)")
}

// negative prints r and turns a refused operation into exit code 1.
func (a *app) negative(r result, ok bool) error {
	if err := a.printer().print(r); err != nil {
		return err
	}
	if !ok {
		return errNegative
	}
	return nil
}

// waitError says a blocking acquire ran out of time, from err of a
// coordination Acquire that ended because its context did.
func waitError(err error, wait msValue, what string) (string, bool) {
	if !errors.Is(err, context.DeadlineExceeded) {
		return "", false
	}
	var he *coordination.HeldError
	var de *coordination.DeniedError
	msg := fmt.Sprintf("timed out after %d ms", int64(wait))
	switch {
	case errors.As(err, &he):
		msg += ": " + he.Message
	case errors.As(err, &de):
		msg += ": " + de.Message
	default:
		msg += " waiting for " + what
	}
	return msg, true
}

// ---- lock ----

type lockResult struct{ *api.LockResponse }

func (r lockResult) printHuman(out, _ io.Writer) error {
	if !r.IsSuccess {
		_, err := fmt.Fprintf(out, "FAILED: %s\n", r.Error)
		return err
	}
	switch r.Operation {
	case "release":
		_, err := fmt.Fprintf(out, "Released lock %s\n", r.Key)
		return err
	case "renew":
		_, err := fmt.Fprintf(out, "Renewed lock %s (fencing token %d, deadline %s)\n", r.Key, r.FencingToken, msTime(r.DeadlineMs))
		return err
	}
	_, err := fmt.Fprintf(out, "Acquired lock %s (fencing token %d, deadline %s)\n", r.Key, r.FencingToken, msTime(r.DeadlineMs))
	return err
}

func msTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

type lockOptions struct {
	holder string
	ttl    msValue
	token  uint64
	wait   msValue
}

func (a *app) newLockCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Distributed locks with fencing tokens",
		Long: `Distributed locks with fencing tokens.

Each acquisition gets a fencing token strictly greater than every earlier one
of the lock (also after releases and expiries): pass it to what the lock
protects. A lock expires --ttl milliseconds after it was acquired or renewed,
on the leader's clock. Locks are not re-entrant.

Exit codes: 0 done, 1 refused (held by another holder, wrong holder or token,
expired), 2 usage error, 3 cluster error. --json prints {operation, key,
is_success, fencing_token, holder_id, deadline_ms, error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var acq, try, rel, ren lockOptions
	acquire := &cobra.Command{
		Use:   "acquire KEY --holder H --ttl MS [--timeout MS]",
		Short: "Acquire a lock, waiting up to --timeout (default 5000 ms)",
		Long: `Acquire a lock, waiting up to --timeout (default 5000 ms) for it to be free.
The waiting is done by this client: it retries with jittered exponential
backoff from 10 ms to 1 s.`,
		Args: exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error { return a.lockAcquire(cmd, args[0], &acq, true) },
	}
	tryAcquire := &cobra.Command{
		Use:   "try-acquire KEY --holder H --ttl MS",
		Short: "Acquire a lock if it is free, without waiting",
		Args:  exactArgs(1, "one KEY"),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.lockAcquire(cmd, args[0], &try, false) },
	}
	release := &cobra.Command{
		Use:   "release KEY --holder H --fencing-token T",
		Short: "Release a lock (releasing a lock that does not exist succeeds)",
		Args:  exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.LockRelease(cmd.Context(), &api.LockReleaseRequest{Key: args[0], HolderID: rel.holder, FencingToken: rel.token})
				if err != nil {
					return err
				}
				return a.negative(lockResult{resp}, resp.IsSuccess)
			})
		},
	}
	renew := &cobra.Command{
		Use:   "renew KEY --holder H --fencing-token T [--ttl MS]",
		Short: "Extend a held lock to now + TTL (default: the TTL it was acquired with)",
		Args:  exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.LockRenew(cmd.Context(), &api.LockRenewRequest{Key: args[0], HolderID: ren.holder, FencingToken: ren.token, TTLMs: int64(ren.ttl)})
				if err != nil {
					return err
				}
				return a.negative(lockResult{resp}, resp.IsSuccess)
			})
		},
	}
	for _, x := range []struct {
		c *cobra.Command
		o *lockOptions
	}{{acquire, &acq}, {tryAcquire, &try}, {release, &rel}, {renew, &ren}} {
		x.c.Flags().StringVar(&x.o.holder, "holder", "", "holder id (required)")
		_ = x.c.MarkFlagRequired("holder")
		switch x.c {
		case acquire, tryAcquire:
			x.c.Flags().Var(&x.o.ttl, "ttl", "lock TTL in milliseconds or as a duration (required)")
			_ = x.c.MarkFlagRequired("ttl")
		case renew:
			x.c.Flags().Var(&x.o.ttl, "ttl", "new TTL in milliseconds or as a duration")
		}
		if x.c == release || x.c == renew {
			x.c.Flags().Uint64Var(&x.o.token, "fencing-token", 0, "fencing token of the acquisition (required)")
			_ = x.c.MarkFlagRequired("fencing-token")
		}
	}
	waitFlag(acquire, &acq.wait)
	cmd.AddCommand(acquire, tryAcquire, release, renew)
	return cmd
}

func (a *app) lockAcquire(cmd *cobra.Command, key string, o *lockOptions, wait bool) error {
	if err := checkKey(key, "KEY"); err != nil {
		return err
	}
	return a.withCoord(func(c coordRemote) error {
		l := coordination.NewLock(c, key, coordination.LockOptions{Holder: o.holder, TTL: time.Duration(o.ttl) * time.Millisecond})
		op := "try_acquire"
		ctx := cmd.Context()
		var g *coordination.Guard
		var err error
		if wait {
			op = "acquire"
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(o.wait)*time.Millisecond)
			defer cancel()
			g, err = l.Acquire(ctx)
		} else {
			g, err = l.TryAcquire(ctx)
		}
		r := &api.LockResponse{Operation: op, Key: key}
		var he *coordination.HeldError
		switch {
		case err == nil:
			r.IsSuccess, r.FencingToken, r.HolderID, r.DeadlineMs = true, g.FencingToken(), g.Holder(), g.LeaderDeadline().UnixMilli()
		case errors.As(err, &he):
			r.HolderID, r.FencingToken, r.DeadlineMs, r.Error = he.Holder, he.FencingToken, he.Deadline.UnixMilli(), he.Message
			if msg, ok := waitError(err, o.wait, "the lock"); ok {
				r.Error = msg
			}
		default:
			return err
		}
		return a.negative(lockResult{r}, r.IsSuccess)
	})
}
