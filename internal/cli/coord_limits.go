package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
)

// ---- semaphore ----

type semaphoreResult struct{ *api.SemaphoreResponse }

func (r semaphoreResult) printHuman(out, _ io.Writer) error {
	var err error
	switch {
	case !r.IsSuccess:
		_, err = fmt.Fprintf(out, "FAILED: %s\n", r.Error)
	case r.Operation == "status":
		_, err = fmt.Fprintf(out, "%s: %d of %d permits available, %d holder(s)\n", r.Name, r.Available, r.CapacityPermits, len(r.Holders))
		for _, h := range r.Holders {
			if err == nil {
				_, err = fmt.Fprintf(out, "  %s  %d permit(s) until %s\n", h.HolderID, h.Permits, msTime(h.DeadlineMs))
			}
		}
	case r.Operation == "release":
		_, err = fmt.Fprintf(out, "Released; holding %d permit(s), %d of %d available\n", r.PermitsAcquired, r.Available, r.CapacityPermits)
	default:
		_, err = fmt.Fprintf(out, "Acquired %d permit(s) of %s, %d of %d available\n", r.PermitsAcquired, r.Name, r.Available, r.CapacityPermits)
	}
	return err
}

type semaphoreOptions struct {
	holder   string
	permits  uint32
	capacity uint32
	ttl      msValue
	wait     msValue
}

func (a *app) newSemaphoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "semaphore",
		Short: "Counting semaphores",
		Long: `Counting semaphores: the live permits of all holders never exceed the
capacity. A holder's permits expire --ttl milliseconds after its last
acquire (on the leader's clock); acquiring again refreshes them instead of
adding a second hold. At most 256 holders per semaphore.

Exit codes: 0 done, 1 refused (no permits free, semaphore not found),
2 usage error, 3 cluster error. --json prints {operation, name, is_success,
permits_acquired, available, max_permits, capacity_permits, retry_after_ms,
error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var acq, try, rel semaphoreOptions
	acquire := &cobra.Command{
		Use:   "acquire NAME --holder H --capacity C [--permits 1] [--ttl 30000] [--timeout 5000]",
		Short: "Take permits, waiting up to --timeout (client-side retries)",
		Args:  exactArgs(1, "one NAME"),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.semAcquire(cmd, args[0], &acq, true) },
	}
	tryAcquire := &cobra.Command{
		Use:   "try-acquire NAME --holder H --capacity C [--permits 1] [--ttl 30000]",
		Short: "Take permits if free, without waiting",
		Args:  exactArgs(1, "one NAME"),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.semAcquire(cmd, args[0], &try, false) },
	}
	for _, x := range []struct {
		c *cobra.Command
		o *semaphoreOptions
	}{{acquire, &acq}, {tryAcquire, &try}} {
		x.o.ttl = 30000
		x.c.Flags().StringVar(&x.o.holder, "holder", "", "holder id (required)")
		x.c.Flags().Uint32Var(&x.o.permits, "permits", 1, "permits to take")
		x.c.Flags().Uint32Var(&x.o.capacity, "capacity", 0, "capacity of the semaphore (required)")
		x.c.Flags().Var(&x.o.ttl, "ttl", "how long the permits last, in milliseconds or as a duration")
		_ = x.c.MarkFlagRequired("holder")
		_ = x.c.MarkFlagRequired("capacity")
	}
	waitFlag(acquire, &acq.wait)
	release := &cobra.Command{
		Use:   "release NAME --holder H [--permits 0]",
		Short: "Return permits (0 = all the holder has)",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.SemaphoreRelease(cmd.Context(), &api.SemaphoreReleaseRequest{Name: args[0], HolderID: rel.holder, Permits: rel.permits})
				if err != nil {
					return err
				}
				return a.negative(semaphoreResult{resp}, resp.IsSuccess)
			})
		},
	}
	release.Flags().StringVar(&rel.holder, "holder", "", "holder id (required)")
	release.Flags().Uint32Var(&rel.permits, "permits", 0, "permits to return (0 = all)")
	_ = release.MarkFlagRequired("holder")
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Show capacity, available permits and holders",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.SemaphoreStatus(cmd.Context(), &api.SemaphoreStatusRequest{Name: args[0]})
				if err != nil {
					return err
				}
				return a.negative(semaphoreResult{resp}, resp.IsSuccess)
			})
		},
	}
	cmd.AddCommand(acquire, tryAcquire, release, status)
	return cmd
}

func (a *app) semAcquire(cmd *cobra.Command, name string, o *semaphoreOptions, wait bool) error {
	if err := checkKey(name, "NAME"); err != nil {
		return err
	}
	return a.withCoord(func(c coordRemote) error {
		s := coordination.NewSemaphore(c, name, coordination.SemaphoreOptions{Holder: o.holder, Capacity: o.capacity, TTL: time.Duration(o.ttl) * time.Millisecond})
		ctx := cmd.Context()
		op := "try_acquire"
		var resp *api.SemaphoreResponse
		var err error
		if wait {
			op = "acquire"
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(o.wait)*time.Millisecond)
			defer cancel()
			resp, err = s.Acquire(ctx, o.permits)
		} else {
			resp, err = s.TryAcquire(ctx, o.permits)
		}
		if err != nil && !errors.Is(err, coordination.ErrUnavailable) {
			return err
		}
		if resp == nil {
			resp = &api.SemaphoreResponse{Name: name, MaxPermits: o.capacity, CapacityPermits: o.capacity}
		}
		resp.Operation = op
		if msg, ok := waitError(err, o.wait, "permits"); ok {
			resp.IsSuccess, resp.Error = false, msg
		}
		return a.negative(semaphoreResult{resp}, resp.IsSuccess)
	})
}

// ---- ratelimit ----

type rateLimitResult struct{ *api.RateLimitResponse }

func (r rateLimitResult) printHuman(out, _ io.Writer) error {
	var err error
	switch {
	case !r.IsSuccess:
		_, err = fmt.Fprintf(out, "FAILED: %s (retry after %d ms, %d token(s) left)\n", r.Error, r.RetryAfterMs, r.TokensRemaining)
	case r.Operation == "available" || r.Operation == "reset":
		_, err = fmt.Fprintln(out, r.TokensRemaining)
	default:
		_, err = fmt.Fprintf(out, "OK: %d token(s) remaining\n", r.TokensRemaining)
	}
	return err
}

type rateLimitOptions struct {
	tokens   uint64
	capacity uint64
	rate     float64
	wait     msValue
}

func (a *app) newRateLimitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ratelimit",
		Short: "Token-bucket rate limiters",
		Long: `Token-bucket rate limiters shared by all clients. A bucket starts full with
--capacity tokens and refills --rate tokens per second (on the leader's
clock), up to the capacity. Give the same capacity and rate on every call.

Exit codes: 0 done, 1 rate limited, 2 usage error, 3 cluster error. --json
prints {operation, key, is_success, tokens_remaining, retry_after_ms, error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var acq, try, av, rs rateLimitOptions
	mk := func(use, short string, o *rateLimitOptions, f func(*cobra.Command, coordRemote, *api.RateLimitRequest) (*api.RateLimitResponse, error)) *cobra.Command {
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  exactArgs(1, "one KEY"),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := checkKey(args[0], "KEY"); err != nil {
					return err
				}
				if o.capacity < 1 || o.capacity > api.MaxRateLimitCapacity {
					return usageErrorf("invalid --capacity %d: want 1..%d", o.capacity, api.MaxRateLimitCapacity)
				}
				if math.IsNaN(o.rate) || o.rate <= 0 || o.rate > api.MaxRateLimitPerSecond {
					return usageErrorf("invalid --rate %v: want a number of tokens per second above 0", o.rate)
				}
				return a.withCoord(func(c coordRemote) error {
					resp, err := f(cmd, c, &api.RateLimitRequest{Key: args[0], Tokens: o.tokens, Capacity: o.capacity, RatePerSecond: o.rate})
					if err != nil {
						return err
					}
					return a.negative(rateLimitResult{resp}, resp.IsSuccess)
				})
			},
		}
		c.Flags().Uint64Var(&o.capacity, "capacity", 0, "tokens in a full bucket (required)")
		c.Flags().Float64Var(&o.rate, "rate", 0, "tokens added per second (required)")
		_ = c.MarkFlagRequired("capacity")
		_ = c.MarkFlagRequired("rate")
		return c
	}
	tryAcquire := mk("try-acquire KEY [--tokens 1] --capacity C --rate R", "Take tokens if available, without waiting", &try,
		func(cmd *cobra.Command, c coordRemote, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
			return c.RateLimitTryAcquire(cmd.Context(), req)
		})
	acquire := mk("acquire KEY [--tokens 1] --capacity C --rate R [--timeout 5000]", "Take tokens, waiting up to --timeout (client-side retries)", &acq,
		func(cmd *cobra.Command, c coordRemote, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(acq.wait)*time.Millisecond)
			defer cancel()
			l := coordination.NewRateLimiter(c, req.Key, coordination.RateLimitOptions{Capacity: req.Capacity, RatePerSecond: req.RatePerSecond})
			left, err := l.Acquire(ctx, max(req.Tokens, 1))
			out := &api.RateLimitResponse{Operation: "acquire", Key: req.Key, IsSuccess: err == nil, TokensRemaining: left}
			var d *coordination.DeniedError
			switch {
			case err == nil:
			case errors.As(err, &d):
				out.RetryAfterMs, out.Error = d.RetryAfter.Milliseconds(), d.Message
				if msg, ok := waitError(err, acq.wait, "tokens"); ok {
					out.Error = msg
				}
			default:
				return nil, err
			}
			return out, nil
		})
	for _, x := range []struct {
		c *cobra.Command
		o *rateLimitOptions
	}{{tryAcquire, &try}, {acquire, &acq}} {
		x.c.Flags().Uint64Var(&x.o.tokens, "tokens", 1, "tokens to take")
	}
	waitFlag(acquire, &acq.wait)
	available := mk("available KEY --capacity C --rate R", "Show the whole tokens available now", &av,
		func(cmd *cobra.Command, c coordRemote, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
			return c.RateLimitAvailable(cmd.Context(), req)
		})
	reset := mk("reset KEY --capacity C --rate R", "Refill the bucket to its capacity", &rs,
		func(cmd *cobra.Command, c coordRemote, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
			return c.RateLimitReset(cmd.Context(), req)
		})
	cmd.AddCommand(acquire, tryAcquire, available, reset)
	return cmd
}
