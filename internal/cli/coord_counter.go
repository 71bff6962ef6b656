package cli

import (
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
)

// ---- counter ----

type counterResult struct{ *api.CounterResponse }

func (r counterResult) printHuman(out, _ io.Writer) error {
	if !r.IsSuccess {
		_, err := fmt.Fprintf(out, "CONFLICT: %s\n", r.Error)
		return err
	}
	_, err := fmt.Fprintln(out, r.Value)
	return err
}

type signedCounterResult struct{ *api.SignedCounterResponse }

func (r signedCounterResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintln(out, r.Value)
	return err
}

func parseUint(s, what string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usageErrorf("invalid %s %q: want an integer 0..%d", what, s, uint64(math.MaxUint64))
	}
	return v, nil
}

func parseInt(s, what string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, usageErrorf("invalid %s %q: want an integer %d..%d", what, s, int64(math.MinInt64), int64(math.MaxInt64))
	}
	return v, nil
}

func (a *app) newCounterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "counter",
		Short: "Atomic counters",
		Long: `Atomic counters, linearizable across the cluster.

Counters are unsigned, 0..18446744073709551615: add saturates at the top,
decr and sub stop at 0 (decr at 0 stays 0 and succeeds). A counter never
written reads 0. With --signed, get/incr/decr/add/sub use a separate signed
(int64) counter of the same name, which may go negative; an add that would
leave int64 fails.

The human form prints the value. Exit codes: 0 done, 1 cas refused (the
value has changed; --json value is the current value), 2 usage error,
3 cluster error. --json prints {key, operation, is_success, value, error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var signed bool
	// amountCmd builds get/incr/decr/add/sub: sign is +1, -1 or 0 (get).
	amountCmd := func(use, short string, sign int, fixed uint64) *cobra.Command {
		nargs, what := 1, "one KEY"
		if fixed == 0 && sign != 0 {
			nargs, what = 2, "KEY and N"
		}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  exactArgs(nargs, what),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := checkKey(args[0], "KEY"); err != nil {
					return err
				}
				n := fixed
				if nargs == 2 {
					var err error
					if n, err = parseUint(args[1], "N"); err != nil {
						return err
					}
				}
				return a.withCoord(func(c coordRemote) error {
					ctx := cmd.Context()
					if signed {
						if n > math.MaxInt64 {
							return usageErrorf("N is %d; a signed counter takes at most %d", n, int64(math.MaxInt64))
						}
						var resp *api.SignedCounterResponse
						var err error
						if sign == 0 {
							resp, err = c.SignedCounterGet(ctx, &api.SignedCounterRequest{Key: args[0]})
						} else {
							resp, err = c.SignedCounterAdd(ctx, &api.SignedCounterRequest{Key: args[0], Delta: int64(sign) * int64(n)})
						}
						if err != nil {
							return err
						}
						return a.printer().print(signedCounterResult{resp})
					}
					var resp *api.CounterResponse
					var err error
					switch sign {
					case 0:
						resp, err = c.CounterGet(ctx, &api.CounterRequest{Key: args[0]})
					case 1:
						resp, err = c.CounterAdd(ctx, &api.CounterRequest{Key: args[0], Amount: n})
					default:
						resp, err = c.CounterSub(ctx, &api.CounterRequest{Key: args[0], Amount: n})
					}
					if err != nil {
						return err
					}
					resp.Operation = cmd.Name()
					return a.negative(counterResult{resp}, resp.IsSuccess)
				})
			},
		}
		c.Flags().BoolVar(&signed, "signed", false, "use the signed (int64) counter of this name")
		return c
	}
	set := &cobra.Command{
		Use:   "set KEY N",
		Short: "Set a counter",
		Args:  exactArgs(2, "KEY and N"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkKey(args[0], "KEY"); err != nil {
				return err
			}
			v, err := parseUint(args[1], "N")
			if err != nil {
				return err
			}
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.CounterSet(cmd.Context(), &api.CounterSetRequest{Key: args[0], Value: v})
				if err != nil {
					return err
				}
				return a.negative(counterResult{resp}, resp.IsSuccess)
			})
		},
	}
	var expected, newValue string
	cas := &cobra.Command{
		Use:   "cas KEY --expected E --new-value V",
		Short: "Set a counter to V if it holds E (a missing counter holds 0)",
		Args:  exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkKey(args[0], "KEY"); err != nil {
				return err
			}
			e, err := parseUint(expected, "--expected")
			if err != nil {
				return err
			}
			v, err := parseUint(newValue, "--new-value")
			if err != nil {
				return err
			}
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.CounterCAS(cmd.Context(), &api.CounterCASRequest{Key: args[0], Expected: e, NewValue: v})
				if err != nil {
					return err
				}
				return a.negative(counterResult{resp}, resp.IsSuccess)
			})
		},
	}
	cas.Flags().StringVar(&expected, "expected", "", "the value the counter must hold (required)")
	cas.Flags().StringVar(&newValue, "new-value", "", "the value to set (required)")
	_ = cas.MarkFlagRequired("expected")
	_ = cas.MarkFlagRequired("new-value")
	cmd.AddCommand(
		amountCmd("get KEY", "Read a counter", 0, 0),
		amountCmd("incr KEY", "Add 1", 1, 1),
		amountCmd("decr KEY", "Subtract 1 (stops at 0)", -1, 1),
		amountCmd("add KEY N", "Add N (saturates at the maximum)", 1, 0),
		amountCmd("sub KEY N", "Subtract N (stops at 0)", -1, 0),
		set, cas,
	)
	return cmd
}

// ---- sequence ----

type sequenceResult struct{ *api.SequenceResponse }

func (r sequenceResult) printHuman(out, _ io.Writer) error {
	if !r.IsSuccess {
		_, err := fmt.Fprintf(out, "FAILED: %s\n", r.Error)
		return err
	}
	_, err := fmt.Fprintln(out, r.Value)
	return err
}

func (a *app) newSequenceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sequence",
		Short: "Sequence generators: unique, consecutive IDs",
		Long: `Sequence generators: IDs 1, 2, 3… unique and consecutive across all clients
and nodes (no gaps, no duplicates), up to 9223372036854775807.

The human form prints the ID. Exit codes: 0 done, 1 sequence exhausted,
2 usage error, 3 cluster error. --json prints {key, operation, is_success,
value, error} (reserve adds count).`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	run := func(cmd *cobra.Command, key string, f func(coordRemote) (*api.SequenceResponse, error)) error {
		if err := checkKey(key, "KEY"); err != nil {
			return err
		}
		return a.withCoord(func(c coordRemote) error {
			resp, err := f(c)
			if err != nil {
				return err
			}
			return a.negative(sequenceResult{resp}, resp.IsSuccess)
		})
	}
	next := &cobra.Command{
		Use:   "next KEY",
		Short: "Take the next ID",
		Args:  exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, args[0], func(c coordRemote) (*api.SequenceResponse, error) {
				return c.SequenceNext(cmd.Context(), &api.SequenceRequest{Key: args[0]})
			})
		},
	}
	reserve := &cobra.Command{
		Use:   "reserve KEY COUNT",
		Short: "Take COUNT consecutive IDs; prints the first, S: the caller owns [S, S+COUNT)",
		Args:  exactArgs(2, "KEY and COUNT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseUint(args[1], "COUNT")
			if err != nil {
				return err
			}
			if n == 0 || n > math.MaxInt64 {
				return usageErrorf("invalid COUNT %d: want 1..%d", n, int64(math.MaxInt64))
			}
			return run(cmd, args[0], func(c coordRemote) (*api.SequenceResponse, error) {
				return c.SequenceReserve(cmd.Context(), &api.SequenceRequest{Key: args[0], Count: n})
			})
		},
	}
	current := &cobra.Command{
		Use:   "current KEY",
		Short: "Show the ID next would return (1 for a new sequence), without taking it",
		Args:  exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, args[0], func(c coordRemote) (*api.SequenceResponse, error) {
				return c.SequenceCurrent(cmd.Context(), &api.SequenceRequest{Key: args[0]})
			})
		},
	}
	cmd.AddCommand(next, reserve, current)
	return cmd
}
