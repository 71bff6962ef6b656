package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
)

// ---- lease ----

type leaseInfoResult struct{ *api.LeaseInfo }

func (r leaseInfoResult) printHuman(out, _ io.Writer) error {
	var err error
	switch r.Operation {
	case "grant":
		_, err = fmt.Fprintf(out, "Granted lease %d (TTL %d s)\n", r.LeaseID, r.TTLSeconds)
	case "keepalive":
		_, err = fmt.Fprintf(out, "Kept lease %d alive (TTL %d s)\n", r.LeaseID, r.TTLSeconds)
	default:
		_, err = fmt.Fprintf(out, "Lease %d: granted TTL %d s, remaining %d s, %d attached keys\n", r.LeaseID, r.GrantedTTLSeconds, r.RemainingTTLSeconds, r.AttachedKeys)
		for _, k := range r.Keys {
			if err == nil {
				_, err = fmt.Fprintf(out, "  %s\n", k)
			}
		}
	}
	return err
}

type leaseRevokeResult struct{ *api.LeaseRevokeResponse }

func (r leaseRevokeResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintf(out, "Revoked lease %d (%d keys deleted)\n", r.LeaseID, r.KeysDeleted)
	return err
}

type leaseListResult struct{ *api.LeaseListResponse }

func (r leaseListResult) printHuman(out, _ io.Writer) error {
	for _, l := range r.Leases {
		if _, err := fmt.Fprintf(out, "%d\tttl %d s\tremaining %d s\t%d keys\n", l.LeaseID, l.GrantedTTLSeconds, l.RemainingTTLSeconds, l.AttachedKeys); err != nil {
			return err
		}
	}
	return nil
}

// leaseID parses a lease id argument.
func leaseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 || id > api.MaxLeaseID {
		return 0, usageErrorf("lease ID %q: want a number 1..%d", s, int64(api.MaxLeaseID))
	}
	return id, nil
}

func (a *app) newLeaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Leases: TTLs that keys are attached to",
		Long: `Leases. A lease lives TTL seconds after it was granted or last kept alive, on
the leader's clock. Keys written with it (aspen-cli kv set KEY VALUE --lease ID)
are deleted together, in one transaction, when it is revoked or expires; a key
written again without the lease before that is detached and stays. At most 64
keys can be attached to one lease.

Exit codes: 0 done, 1 the lease is unknown or expired (NOT_FOUND), 2 usage
error, 3 cluster error. --json prints {lease_id, ttl_seconds,
granted_ttl_seconds, remaining_ttl_seconds, deadline_ms, attached_keys, keys}
(grant, ttl, keepalive), {lease_id, keys_deleted} (revoke) or {leases: [...]}
(list).`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var grantID int64
	grant := &cobra.Command{
		Use:   "grant TTL_SECS [--id N]",
		Short: "Create a lease of TTL_SECS seconds",
		Args:  exactArgs(1, "one TTL_SECS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ttl, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || ttl < 1 || ttl > api.MaxLeaseTTLSeconds {
				return usageErrorf("TTL_SECS %q: want a whole number of seconds, 1..%d", args[0], int64(api.MaxLeaseTTLSeconds))
			}
			if grantID < 0 || grantID > api.MaxLeaseID {
				return usageErrorf("--id %d: want 1..%d (or leave it out to get a random id)", grantID, int64(api.MaxLeaseID))
			}
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.LeaseGrant(cmd.Context(), &api.LeaseGrantRequest{TTLSeconds: ttl, LeaseID: grantID})
				if err != nil {
					return err
				}
				return a.printer().print(leaseInfoResult{resp})
			})
		},
	}
	grant.Flags().Int64Var(&grantID, "id", 0, "lease id to use (default: chosen by the cluster)")
	var withKeys bool
	ttl := &cobra.Command{
		Use:   "ttl ID [--keys]",
		Short: "Show a lease's granted and remaining TTL (and, with --keys, its keys)",
		Args:  exactArgs(1, "one lease ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.leaseCall(args[0], func(c coordRemote, id int64) (result, error) {
				resp, err := c.LeaseTTL(cmd.Context(), &api.LeaseRequest{LeaseID: id, Keys: withKeys})
				return leaseInfoResult{resp}, err
			})
		},
	}
	ttl.Flags().BoolVar(&withKeys, "keys", false, "also list the keys attached to the lease")
	keepalive := &cobra.Command{
		Use:   "keepalive ID",
		Short: "Reset a lease's expiry to now + its TTL",
		Args:  exactArgs(1, "one lease ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.leaseCall(args[0], func(c coordRemote, id int64) (result, error) {
				resp, err := c.LeaseKeepAlive(cmd.Context(), &api.LeaseRequest{LeaseID: id})
				return leaseInfoResult{resp}, err
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "End a lease now and delete the keys attached to it",
		Args:  exactArgs(1, "one lease ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.leaseCall(args[0], func(c coordRemote, id int64) (result, error) {
				resp, err := c.LeaseRevoke(cmd.Context(), &api.LeaseRequest{LeaseID: id})
				return leaseRevokeResult{resp}, err
			})
		},
	}
	var limit int
	list := &cobra.Command{
		Use:   "list [--limit N]",
		Short: "List the live leases",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.LeaseList(cmd.Context(), &api.LeaseListRequest{Limit: limit})
				if err != nil {
					return err
				}
				return a.printer().print(leaseListResult{resp})
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "at most this many leases (default 1000, at most 10000)")
	cmd.AddCommand(grant, ttl, keepalive, revoke, list)
	return cmd
}

// leaseCall parses the lease ID argument, runs f and prints its result.
func (a *app) leaseCall(arg string, f func(coordRemote, int64) (result, error)) error {
	id, err := leaseID(arg)
	if err != nil {
		return err
	}
	return a.withCoord(func(c coordRemote) error {
		r, err := f(c, id)
		if err != nil {
			return err
		}
		return a.printer().print(r)
	})
}

// ---- election ----

type electionResult struct {
	Operation    string `json:"operation"`
	Name         string `json:"name"`
	IsSuccess    bool   `json:"is_success"`
	Leader       string `json:"leader"`
	FencingToken uint64 `json:"fencing_token"`
	DeadlineMs   int64  `json:"deadline_ms"`
	Error        string `json:"error,omitempty"`
}

func (r *electionResult) printHuman(out, _ io.Writer) error {
	var err error
	switch {
	case !r.IsSuccess:
		_, err = fmt.Fprintf(out, "FAILED: %s\n", r.Error)
	case r.Operation == "resign":
		_, err = fmt.Fprintf(out, "Resigned from %s\n", r.Name)
	default:
		_, err = fmt.Fprintf(out, "%s leads %s (fencing token %d, term ends %s unless renewed)\n", r.Leader, r.Name, r.FencingToken, msTime(r.DeadlineMs))
	}
	return err
}

func (a *app) newElectionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "election",
		Short: "Leader election (one term = one hold of the lock election/NAME)",
		Long: `Leader election. A term is one acquisition of the lock "election/NAME" by a
candidate, with its fencing token: every new term has a strictly larger token.
Programs should use the Go library (coordination.NewElection), which renews the
term in the background; from the command line a term lasts --ttl unless renewed
with 'aspen-cli lock renew election/NAME --holder C --fencing-token T'.

Exit codes: 0 done, 1 refused (another candidate leads, nobody leads, stale
token), 2 usage error, 3 cluster error. --json prints {operation, name,
is_success, leader, fencing_token, deadline_ms, error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var candidate string
	var ttl, wait msValue
	campaign := &cobra.Command{
		Use:   "campaign NAME --candidate C [--ttl MS] [--timeout MS]",
		Short: "Wait up to --timeout to lead NAME for --ttl (default 10000 ms)",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(wait)*time.Millisecond)
				defer cancel()
				l := coordination.NewLock(c, coordination.ElectionLock(args[0]), coordination.LockOptions{Holder: candidate, TTL: time.Duration(ttl) * time.Millisecond})
				g, err := l.Acquire(ctx)
				r := &electionResult{Operation: "campaign", Name: args[0]}
				if err != nil {
					msg, ok := waitError(err, wait, "leadership")
					if !ok {
						return err
					}
					r.Error = msg
					return a.negative(r, false)
				}
				r.IsSuccess, r.Leader, r.FencingToken, r.DeadlineMs = true, candidate, g.FencingToken(), g.LeaderDeadline().UnixMilli()
				return a.printer().print(r)
			})
		},
	}
	campaign.Flags().StringVar(&candidate, "candidate", "", "candidate id (required)")
	_ = campaign.MarkFlagRequired("candidate")
	ttl = 10000
	campaign.Flags().Var(&ttl, "ttl", "term length in milliseconds or as a duration")
	waitFlag(campaign, &wait)

	leader := &cobra.Command{
		Use:   "leader NAME",
		Short: "Show who leads NAME (exit 1 when nobody does)",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				e := coordination.NewElection(c, args[0], "", coordination.ElectionOptions{})
				l, err := e.Leader(cmd.Context())
				r := &electionResult{Operation: "leader", Name: args[0]}
				switch {
				case errors.Is(err, coordination.ErrNoLeader):
					r.Error = "no leader"
					return a.negative(r, false)
				case err != nil:
					return err
				}
				r.IsSuccess, r.Leader, r.FencingToken, r.DeadlineMs = true, l.Candidate, l.FencingToken, l.Deadline.UnixMilli()
				return a.printer().print(r)
			})
		},
	}
	var rcand string
	var token uint64
	resign := &cobra.Command{
		Use:   "resign NAME --candidate C --fencing-token T",
		Short: "End a term at once, so another candidate can lead",
		Args:  exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := c.LockRelease(cmd.Context(), &api.LockReleaseRequest{Key: coordination.ElectionLock(args[0]), HolderID: rcand, FencingToken: token})
				if err != nil {
					return err
				}
				r := &electionResult{Operation: "resign", Name: args[0], IsSuccess: resp.IsSuccess, Leader: resp.HolderID, FencingToken: resp.FencingToken, Error: resp.Error}
				return a.negative(r, resp.IsSuccess)
			})
		},
	}
	resign.Flags().StringVar(&rcand, "candidate", "", "candidate id (required)")
	_ = resign.MarkFlagRequired("candidate")
	resign.Flags().Uint64Var(&token, "fencing-token", 0, "fencing token of the term (required)")
	_ = resign.MarkFlagRequired("fencing-token")
	cmd.AddCommand(campaign, leader, resign)
	return cmd
}
