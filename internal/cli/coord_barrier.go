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

type barrierResult struct{ *api.BarrierResponse }

func (r barrierResult) printHuman(out, _ io.Writer) error {
	var err error
	switch {
	case !r.IsSuccess:
		_, err = fmt.Fprintf(out, "FAILED: %s\n", r.Error)
	case r.Operation == "status":
		_, err = fmt.Fprintf(out, "%s: phase %s, %d of %d participant(s)\n", r.Name, r.Phase, r.CurrentCount, r.RequiredCount)
	case r.Operation == "leave":
		_, err = fmt.Fprintf(out, "Left barrier %s\n", r.Name)
	default:
		_, err = fmt.Fprintf(out, "Entered barrier %s (%s, %d of %d participant(s))\n", r.Name, r.Phase, r.CurrentCount, r.RequiredCount)
	}
	return err
}

func (a *app) newBarrierCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "barrier",
		Short: "Double barriers",
		Long: `Double barriers: enter waits until --count distinct participants have entered
(phase ready); leave waits until all of them have left, and the barrier is
then removed. The waiting is done by this client, polling with jittered
backoff from 10 ms to 1 s, up to --timeout (default 30000 ms).

Exit codes: 0 done, 1 refused or timed out, 2 usage error, 3 cluster error.
--json prints {operation, name, is_success, current_count, required_count,
phase (waiting|ready|leaving), error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var (
		enterP, leaveP       string
		count                int
		enterWait, leaveWait msValue
	)
	enter := &cobra.Command{
		Use:   "enter NAME --participant P --count N [--timeout 30000]",
		Short: "Enter a barrier and wait until N participants have entered",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 1 || count > api.MaxBarrierCount {
				return &usageError{msg: fmt.Sprintf("--count is %d; want 1..%d", count, api.MaxBarrierCount), cmd: cmd}
			}
			return a.barrierWait(cmd, "enter", args[0], enterP, count, enterWait)
		},
	}
	leave := &cobra.Command{
		Use:   "leave NAME --participant P [--timeout 30000]",
		Short: "Leave a barrier and wait until every participant has left",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.barrierWait(cmd, "leave", args[0], leaveP, 0, leaveWait)
		},
	}
	enter.Flags().StringVar(&enterP, "participant", "", "participant id (required)")
	enter.Flags().IntVar(&count, "count", 0, "number of participants (required)")
	_ = enter.MarkFlagRequired("participant")
	_ = enter.MarkFlagRequired("count")
	leave.Flags().StringVar(&leaveP, "participant", "", "participant id (required)")
	_ = leave.MarkFlagRequired("participant")
	waitFlag(enter, &enterWait)
	waitFlag(leave, &leaveWait)
	enterWait, leaveWait = 30000, 30000
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a barrier's phase and participants",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.BarrierStatus(cmd.Context(), &api.BarrierRequest{Name: args[0]})
				if err != nil {
					return err
				}
				return a.negative(barrierResult{resp}, resp.IsSuccess)
			})
		},
	}
	cmd.AddCommand(enter, leave, status)
	return cmd
}

func (a *app) barrierWait(cmd *cobra.Command, op, name, participant string, count int, wait msValue) error {
	return a.withCoord(func(c coordRemote) error {
		b := coordination.NewBarrier(c, name, participant, count)
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(wait)*time.Millisecond)
		defer cancel()
		var resp *api.BarrierResponse
		var err error
		if op == "enter" {
			resp, err = b.Enter(ctx)
		} else {
			resp, err = b.Leave(ctx)
		}
		var be *coordination.BarrierError
		switch {
		case err == nil:
		case errors.As(err, &be):
		case errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil:
			if resp == nil {
				resp = &api.BarrierResponse{Operation: op, Name: name}
			}
			resp.IsSuccess = false
			resp.Error = fmt.Sprintf("timed out after %d ms: %s", int64(wait), resp.Error)
		default:
			return err
		}
		resp.Pending = false
		return a.negative(barrierResult{resp}, resp.IsSuccess)
	})
}
