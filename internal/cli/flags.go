package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
)

// timeoutValue is the --timeout flag: a Go duration ("30s", "2m") or a bare
// integer number of milliseconds; it must be positive.
type timeoutValue time.Duration

func (t *timeoutValue) String() string { return time.Duration(*t).String() }
func (t *timeoutValue) Type() string   { return "duration" }

func (t *timeoutValue) Set(s string) error {
	d, err := parseTimeout(s)
	if err != nil {
		return err
	}
	*t = timeoutValue(d)
	return nil
}

// parseTimeout parses a --timeout value.
func parseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0, errors.New("must be positive")
		}
		if n > int64(time.Duration(1<<63-1)/time.Millisecond) {
			return 0, errors.New("too large")
		}
		d = time.Duration(n) * time.Millisecond
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, errors.New("want a duration such as 30s or 2m, or milliseconds such as 5000")
		}
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

// parseTTL parses a --ttl value: a Go duration of at least 1ms and at most
// api.MaxTTLMs. A bare number is refused, since its unit would be a guess.
func parseTTL(s string) (int64, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, usageErrorf("invalid --ttl %q: want a duration with a unit, such as 30s, 10m or 24h", s)
	}
	ms := d.Milliseconds()
	if ms < 1 {
		return 0, usageErrorf("invalid --ttl %q: must be at least 1ms", s)
	}
	if ms > api.MaxTTLMs {
		return 0, usageErrorf("invalid --ttl %q: at most %s", s, time.Duration(api.MaxTTLMs)*time.Millisecond)
	}
	return ms, nil
}

// consistencyValue is the --consistency flag.
type consistencyValue api.Consistency

func (c *consistencyValue) String() string {
	if *c == "" {
		return string(api.Linearizable)
	}
	return string(*c)
}
func (c *consistencyValue) Type() string { return "linearizable|stale" }

func (c *consistencyValue) Set(s string) error {
	switch api.Consistency(s) {
	case api.Linearizable, api.Stale:
		*c = consistencyValue(s)
		return nil
	}
	return fmt.Errorf("want %s or %s", api.Linearizable, api.Stale)
}

// addConsistencyFlag registers --consistency on cmd, with completion.
func addConsistencyFlag(cmd *cobra.Command, c *consistencyValue) {
	*c = consistencyValue(api.Linearizable)
	cmd.Flags().Var(c, "consistency", "read consistency: linearizable (through the leader) or stale (local replica)")
	_ = cmd.RegisterFlagCompletionFunc("consistency", cobra.FixedCompletions(
		[]string{string(api.Linearizable), string(api.Stale)}, cobra.ShellCompDirectiveNoFileComp))
}

// exactArgs, rangeArgs and minArgs are cobra argument validators that
// return usage errors naming what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{msg: fmt.Sprintf("expected %s, got %d argument(s)", what, len(args)), cmd: cmd}
		}
		return nil
	}
}

func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return &usageError{msg: fmt.Sprintf("expected %s, got %d argument(s)", what, len(args)), cmd: cmd}
		}
		return nil
	}
}

// parseNodeID parses a node ID argument: a positive decimal integer.
func parseNodeID(s, what string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n == 0 {
		return 0, usageErrorf("invalid %s %q: want a positive integer node ID", what, s)
	}
	return n, nil
}

// checkKey validates a key given on the command line.
func checkKey(key, what string) error {
	if key == "" {
		return usageErrorf("%s must not be empty", what)
	}
	if len(key) > api.MaxKeySize {
		return usageErrorf("%s is %d bytes; the limit is %d", what, len(key), api.MaxKeySize)
	}
	return nil
}
