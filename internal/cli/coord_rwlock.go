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

type rwlockResult struct{ *api.RWLockResponse }

func (r rwlockResult) printHuman(out, _ io.Writer) error {
	var err error
	switch {
	case !r.IsSuccess:
		_, err = fmt.Fprintf(out, "FAILED: %s\n", r.Error)
	case r.Operation == "status":
		_, err = fmt.Fprintf(out, "%s: mode %s, %d reader(s), writer %q, fencing token %d\n", r.Name, r.Mode, r.ReaderCount, r.WriterHolder, r.FencingToken)
	case r.Operation == "release_read" || r.Operation == "release_write":
		_, err = fmt.Fprintf(out, "Released %s (mode now %s)\n", r.Name, r.Mode)
	case r.Mode == "write":
		_, err = fmt.Fprintf(out, "Write-locked %s (fencing token %d, deadline %s)\n", r.Name, r.FencingToken, msTime(r.DeadlineMs))
	default:
		_, err = fmt.Fprintf(out, "Read-locked %s (%d reader(s), deadline %s)\n", r.Name, r.ReaderCount, msTime(r.DeadlineMs))
	}
	return err
}

type rwOptions struct {
	holder string
	ttl    msValue
	token  uint64
	wait   msValue
}

func (a *app) newRWLockCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rwlock",
		Short: "Read/write locks with writer preference",
		Long: `Read/write locks: many readers or one writer. A writer that holds or waits
for the lock (rwlock write) keeps new readers out. Write holds get a fencing
token; downgrade turns a write hold into a read hold and keeps the token.

Exit codes: 0 done, 1 refused, 2 usage error, 3 cluster error. --json prints
{operation, name, is_success, mode, fencing_token, deadline_ms, reader_count,
writer_holder, error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var rd, trd, wr, twr, rr, rw, dg rwOptions
	mk := func(use, short string, o *rwOptions, run func(*cobra.Command, string, *rwOptions) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Args: exactArgs(1, "one NAME"),
			RunE: func(cmd *cobra.Command, args []string) error { return run(cmd, args[0], o) }}
		c.Flags().StringVar(&o.holder, "holder", "", "holder id (required)")
		_ = c.MarkFlagRequired("holder")
		return c
	}
	read := mk("read NAME --holder H [--ttl 30000] [--timeout 5000]", "Take a read hold, waiting up to --timeout", &rd,
		func(c *cobra.Command, n string, o *rwOptions) error { return a.rwAcquire(c, n, o, false, true) })
	tryRead := mk("try-read NAME --holder H [--ttl 30000]", "Take a read hold if no writer holds or waits", &trd,
		func(c *cobra.Command, n string, o *rwOptions) error { return a.rwAcquire(c, n, o, false, false) })
	write := mk("write NAME --holder H [--ttl 30000] [--timeout 5000]", "Take the write hold, waiting up to --timeout", &wr,
		func(c *cobra.Command, n string, o *rwOptions) error { return a.rwAcquire(c, n, o, true, true) })
	tryWrite := mk("try-write NAME --holder H [--ttl 30000]", "Take the write hold if the lock is free", &twr,
		func(c *cobra.Command, n string, o *rwOptions) error { return a.rwAcquire(c, n, o, true, false) })
	call := func(f func(coordRemote, context.Context, *api.RWLockRequest) (*api.RWLockResponse, error)) func(*cobra.Command, string, *rwOptions) error {
		return func(cmd *cobra.Command, name string, o *rwOptions) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := f(c, cmd.Context(), &api.RWLockRequest{Name: name, HolderID: o.holder, FencingToken: o.token, TTLMs: int64(o.ttl)})
				if err != nil {
					return err
				}
				return a.negative(rwlockResult{resp}, resp.IsSuccess)
			})
		}
	}
	releaseRead := mk("release-read NAME --holder H", "Drop a read hold", &rr, call(func(c coordRemote, ctx context.Context, r *api.RWLockRequest) (*api.RWLockResponse, error) {
		return c.RWLockReleaseRead(ctx, r)
	}))
	releaseWrite := mk("release-write NAME --holder H --fencing-token T", "End a write hold", &rw, call(func(c coordRemote, ctx context.Context, r *api.RWLockRequest) (*api.RWLockResponse, error) {
		return c.RWLockReleaseWrite(ctx, r)
	}))
	downgrade := mk("downgrade NAME --holder H --fencing-token T [--ttl MS]", "Turn a write hold into a read hold", &dg, call(func(c coordRemote, ctx context.Context, r *api.RWLockRequest) (*api.RWLockResponse, error) {
		return c.RWLockDowngrade(ctx, r)
	}))
	for _, x := range []struct {
		c *cobra.Command
		o *rwOptions
	}{{read, &rd}, {tryRead, &trd}, {write, &wr}, {tryWrite, &twr}} {
		x.o.ttl = 30000
		x.c.Flags().Var(&x.o.ttl, "ttl", "hold TTL in milliseconds or as a duration")
	}
	downgrade.Flags().Var(&dg.ttl, "ttl", "TTL of the read hold (default: the write hold's)")
	for _, x := range []*cobra.Command{releaseWrite, downgrade} {
		o := &rw
		if x == downgrade {
			o = &dg
		}
		x.Flags().Uint64Var(&o.token, "fencing-token", 0, "fencing token of the write hold (required)")
		_ = x.MarkFlagRequired("fencing-token")
	}
	waitFlag(read, &rd.wait)
	waitFlag(write, &wr.wait)
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Show the mode, readers and writer",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.RWLockStatus(cmd.Context(), &api.RWLockRequest{Name: args[0]})
				if err != nil {
					return err
				}
				return a.negative(rwlockResult{resp}, resp.IsSuccess)
			})
		},
	}
	cmd.AddCommand(read, tryRead, write, tryWrite, releaseRead, releaseWrite, downgrade, status)
	return cmd
}

func (a *app) rwAcquire(cmd *cobra.Command, name string, o *rwOptions, write, wait bool) error {
	return a.withCoord(func(c coordRemote) error {
		l := coordination.NewRWLock(c, name, coordination.RWLockOptions{Holder: o.holder, TTL: time.Duration(o.ttl) * time.Millisecond})
		ctx := cmd.Context()
		if wait {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(o.wait)*time.Millisecond)
			defer cancel()
		}
		var g *coordination.RWGuard
		var err error
		op := map[[2]bool]string{{false, false}: "try_read", {false, true}: "read", {true, false}: "try_write", {true, true}: "write"}[[2]bool{write, wait}]
		switch {
		case write && wait:
			g, err = l.Lock(ctx)
		case write:
			g, err = l.TryLock(ctx)
		case wait:
			g, err = l.RLock(ctx)
		default:
			g, err = l.TryRLock(ctx)
		}
		var he *coordination.HeldError
		switch {
		case err == nil:
		case errors.As(err, &he):
			r := &api.RWLockResponse{Operation: op, Name: name, Mode: "write", WriterHolder: he.Holder, FencingToken: he.FencingToken, Error: he.Message}
			if he.Holder == "" {
				r.Mode = "read"
			}
			if msg, ok := waitError(err, o.wait, "the lock"); ok {
				r.Error = msg
			}
			return a.negative(rwlockResult{r}, false)
		default:
			return err
		}
		// Describe the lock as it is now, with the caller's hold.
		st, err := c.RWLockStatus(cmd.Context(), &api.RWLockRequest{Name: name})
		if err != nil {
			return err
		}
		st.Operation, st.IsSuccess, st.DeadlineMs = op, true, g.LeaderDeadline().UnixMilli()
		if write {
			st.FencingToken = g.FencingToken()
		}
		return a.negative(rwlockResult{st}, true)
	})
}
