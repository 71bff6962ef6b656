package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/hooks"
)

// hookRemote is what the hook commands need from a connection;
// *client.Client has it.
type hookRemote interface {
	HookList(context.Context) (*api.HookListResponse, error)
	HookAdd(context.Context, *api.HookAddRequest) (*api.HookResponse, error)
	HookRemove(context.Context, string) (*api.HookResponse, error)
	HookTrigger(context.Context, *api.HookTriggerRequest) (*api.HookTriggerResponse, error)
	HookMetrics(context.Context, string) (*api.HookMetricsResponse, error)
	HookCreateURL(context.Context, *api.HookCreateURLRequest) (*api.HookCreateURLResponse, error)
}

// withHooks connects and runs f with the hook operations of the connection.
func (a *app) withHooks(f func(hookRemote) error) error {
	return a.withRemote(func(r remote) error {
		h, ok := r.(hookRemote)
		if !ok {
			return errors.New("this connection does not support hooks")
		}
		return f(h)
	})
}

// hookEventTypes are the names accepted by hook trigger (spec 05).
var hookEventTypes = []string{
	"write_committed", "delete_committed", "ttl_expired",
	"leader_elected", "membership_changed", "node_added", "node_removed",
	"snapshot_created", "snapshot_installed", "health_changed",
	"blob_added", "blob_deleted", "blob_downloaded", "blob_protected", "blob_unprotected",
	"ref_updated", "patch_created", "patch_merged", "patch_closed", "patch_approved", "repo_created", "push_completed",
	"pipeline_started", "pipeline_completed", "pipeline_failed", "deploy_completed",
	"sync_started", "sync_completed", "entry_imported", "entry_exported",
}

type hookAddOptions struct {
	pattern, typ, command, url, secret string
	timeout                            msValue
	retries                            int
	disabled, replace                  bool
}

// newHookCmd returns the hook command group.
func (a *app) newHookCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Event hooks: handlers fired by the leader on cluster events",
		Long: `Event hooks: handlers that the leader fires on cluster events.

Events are published on topics hooks.<category>.<type> (hooks.kv.write_committed,
hooks.cluster.leader_elected, ...); KV changes also on key subjects
kv.put.<key> and kv.delete.<key>, the key split on '/' and ':' into
segments (a put of users/42 is on kv.put.users.42). Patterns are NATS-style:
'*' matches one segment, '>' any number of trailing segments.

Handlers are stored in the cluster and survive restarts. Kinds: shell (sh -c
COMMAND, the event JSON in $ASPEN_HOOK_EVENT), webhook (POST of the event JSON,
signed X-Aspen-Signature: sha256=<HMAC of the body with --secret>) and
in_process (a Go function of the node).

Delivery: only the leader fires, in history order, one event at a time. Every
event has an ID ("<revision>-<index>"; "t-..." for a triggered one), sent as
the X-Aspen-Event-Id header and in $ASPEN_HOOK_EVENT_ID. Without a leader
crash each event is delivered once; across one, the event in flight at that
instant may be delivered again with the same ID: de-duplicate on it.

Exit codes: 0 done, 1 not found / a handler failed (trigger), 2 usage error,
3 cluster error.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the handlers stored in the cluster",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withHooks(func(h hookRemote) error {
				resp, err := h.HookList(cmd.Context())
				if err != nil {
					return err
				}
				return a.printer().print(hookListResult{resp})
			})
		},
	}

	var ao hookAddOptions
	add := &cobra.Command{
		Use:   "add NAME --pattern P --type shell|webhook|in_process [--command C | --url U [--secret S]]",
		Short: "Store a handler",
		Long: `Store a handler. --timeout bounds one attempt (default 5000 ms, at most 30 s);
--retries is the number of retries after a failed attempt (default 3, at most 5),
with backoff 100 ms doubling up to 10 s. At most 64 handlers per cluster.`,
		Args: exactArgs(1, "one handler NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			h := api.HookHandler{
				Name: args[0], Pattern: ao.pattern, Type: ao.typ, Command: ao.command, URL: ao.url,
				Secret: ao.secret, TimeoutMs: int64(ao.timeout),
			}
			if cmd.Flags().Changed("retries") {
				h.RetryCount = &ao.retries
			}
			if ao.disabled {
				off := false
				h.Enabled = &off
			}
			return a.withHooks(func(r hookRemote) error {
				resp, err := r.HookAdd(cmd.Context(), &api.HookAddRequest{Handler: h, Replace: ao.replace})
				if err != nil {
					return err
				}
				return a.printer().print(hookAckResult{resp, "Added"})
			})
		},
	}
	add.Flags().StringVar(&ao.pattern, "pattern", "", "subject pattern, e.g. hooks.kv.* or kv.put.users.> (required)")
	add.Flags().StringVar(&ao.typ, "type", "", "handler type: shell, webhook or in_process (required)")
	add.Flags().StringVar(&ao.command, "command", "", "shell command (type shell)")
	add.Flags().StringVar(&ao.url, "url", "", "URL to POST the event to (type webhook)")
	add.Flags().StringVar(&ao.secret, "secret", "", "HMAC-SHA256 key of the X-Aspen-Signature header (type webhook)")
	add.Flags().Var(&ao.timeout, "timeout", "timeout of one attempt, in milliseconds or as a duration (default 5000)")
	add.Flags().IntVar(&ao.retries, "retries", api.DefaultHookRetries, "retries after a failed attempt (0-5)")
	add.Flags().BoolVar(&ao.disabled, "disabled", false, "store the handler without firing it")
	add.Flags().BoolVar(&ao.replace, "replace", false, "replace a handler of the same name")
	_ = add.MarkFlagRequired("pattern")
	_ = add.MarkFlagRequired("type")

	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Delete a stored handler",
		Args:  exactArgs(1, "one handler NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withHooks(func(r hookRemote) error {
				resp, err := r.HookRemove(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return a.printer().print(hookAckResult{resp, "Removed"})
			})
		},
	}

	var payload string
	trigger := &cobra.Command{
		Use:   "trigger EVENT_TYPE [--payload JSON]",
		Short: "Fire a synthetic event (for testing handlers)",
		Long: `Fire a synthetic event of EVENT_TYPE (write_committed, leader_elected, ...)
with --payload (JSON, default {}) on the leader, and wait for the handlers.
Exits 1 when a handler failed after its retries. Event types:
  ` + strings.Join(hookEventTypes, ", "),
		Args: exactArgs(1, "one EVENT_TYPE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !json.Valid([]byte(payload)) {
				return usageErrorf("--payload is not valid JSON: %q", payload)
			}
			known := false
			for _, t := range hookEventTypes {
				known = known || t == args[0]
			}
			if !known {
				return usageErrorf("unknown event type %q; expected one of: %s", args[0], strings.Join(hookEventTypes, ", "))
			}
			return a.withHooks(func(r hookRemote) error {
				resp, err := r.HookTrigger(cmd.Context(), &api.HookTriggerRequest{EventType: args[0], Payload: []byte(payload)})
				if err != nil {
					return err
				}
				return a.negative(hookTriggerResult{resp}, resp.IsSuccess)
			})
		},
	}
	trigger.Flags().StringVar(&payload, "payload", "{}", "event payload (JSON)")
	_ = trigger.RegisterFlagCompletionFunc("payload", cobra.NoFileCompletions)
	trigger.ValidArgs = hookEventTypes

	var handler string
	metrics := &cobra.Command{
		Use:   "metrics [--handler NAME]",
		Short: "Show the leader's delivery counters per handler",
		Long: `Show the leader's delivery counters per handler: events fired, succeeded,
failed (after retries), attempts and average latency. Counters are kept in
the leader's memory and start at zero when a node becomes leader.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withHooks(func(r hookRemote) error {
				resp, err := r.HookMetrics(cmd.Context(), handler)
				if err != nil {
					return err
				}
				return a.printer().print(hookMetricsResult{resp})
			})
		},
	}
	metrics.Flags().StringVar(&handler, "handler", "", "only this handler")

	cmd.AddCommand(list, add, remove, trigger, metrics, a.newHookCreateURLCmd(), a.newHookTriggerURLCmd())
	return cmd
}

type hookListResult struct{ *api.HookListResponse }

func (r hookListResult) printHuman(out, note io.Writer) error {
	if len(r.Handlers) == 0 {
		_, err := fmt.Fprintln(note, "No hook handlers.")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tPATTERN\tENABLED\tTIMEOUT_MS\tRETRIES\tTARGET")
	for _, h := range r.Handlers {
		target := h.Command
		if h.HandlerType == api.HookWebhook {
			target = h.URL
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%d\t%d\t%s\n", h.Name, h.HandlerType, h.Pattern, h.IsEnabled, h.TimeoutMs, h.RetryCount, display([]byte(target), humanMaxValue))
	}
	return tw.Flush()
}

type hookAckResult struct {
	*api.HookResponse
	verb string
}

func (r hookAckResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintf(out, "%s hook %s (revision %d)\n", r.verb, r.Name, r.Revision)
	return err
}

type hookTriggerResult struct{ *api.HookTriggerResponse }

func (r hookTriggerResult) printHuman(out, _ io.Writer) error {
	if len(r.HandlerFailures) > 0 {
		_, err := fmt.Fprintf(out, "FAILED: dispatched to %d handler(s); failed: %s\n", r.DispatchedCount, strings.Join(r.HandlerFailures, ", "))
		return err
	}
	_, err := fmt.Fprintf(out, "Dispatched to %d handler(s)\n", r.DispatchedCount)
	return err
}

type hookMetricsResult struct{ *api.HookMetricsResponse }

func (r hookMetricsResult) printHuman(out, _ io.Writer) error {
	fmt.Fprintf(out, "Events processed: %d\n", r.TotalEventsProcessed)
	if len(r.Handlers) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFIRED\tSUCCEEDED\tFAILED\tATTEMPTS\tAVG_MS\tLAST_ERROR")
	for _, h := range r.Handlers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", h.Name, h.Fired, h.Succeeded, h.Failed, h.Attempts, h.AvgLatencyMs, display([]byte(h.LastError), humanMaxValue))
	}
	return tw.Flush()
}

type hookCreateURLOptions struct {
	eventType, payload, relay string
	expires                   int64
}

func (a *app) newHookCreateURLCmd() *cobra.Command {
	var o hookCreateURLOptions
	cmd := &cobra.Command{
		Use:   "create-url --event-type T [--payload JSON] [--expires HOURS] [--relay-url U]",
		Short: "Create a hook URL (aspenhook...) that fires one event type without a ticket",
		Long: `Create a hook URL ("aspenhook..."): whoever holds it can fire the event type
with 'aspen-cli hook trigger-url' (no cluster ticket needed) until it expires.
Core event types only: ` + strings.Join(hooks.CoreEventTypes, ", ") + `.
--expires is in hours (default 24; 0 = never). The URL holds a random token; the
cluster keeps only its hash.`,
		Args: exactArgs(0, "no arguments (the event type is --event-type)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !hooks.IsCoreEventType(o.eventType) {
				return usageErrorf("--event-type %q: a hook URL fires only a core event type: %s", o.eventType, strings.Join(hooks.CoreEventTypes, ", "))
			}
			if !json.Valid([]byte(o.payload)) {
				return usageErrorf("--payload is not valid JSON: %q", o.payload)
			}
			if o.expires < 0 {
				return usageErrorf("--expires %d: want hours >= 0 (0 = never)", o.expires)
			}
			return a.withHooks(func(r hookRemote) error {
				resp, err := r.HookCreateURL(cmd.Context(), &api.HookCreateURLRequest{EventType: o.eventType, Payload: []byte(o.payload), ExpiresHours: o.expires, RelayURL: o.relay})
				if err != nil {
					return err
				}
				return a.printer().print(hookURLResult{resp})
			})
		},
	}
	cmd.Flags().StringVar(&o.eventType, "event-type", "", "event type the URL fires (required)")
	cmd.Flags().StringVar(&o.payload, "payload", "{}", "default payload (JSON)")
	cmd.Flags().Int64Var(&o.expires, "expires", 24, "validity in hours (0 = never)")
	cmd.Flags().StringVar(&o.relay, "relay-url", "", "relay to reach the cluster through (recorded; not used yet)")
	_ = cmd.MarkFlagRequired("event-type")
	return cmd
}

func (a *app) newHookTriggerURLCmd() *cobra.Command {
	var payload string
	var wait msValue
	cmd := &cobra.Command{
		Use:   "trigger-url URL [--payload JSON] [--timeout MS]",
		Short: "Fire the event of a hook URL (no ticket needed)",
		Long: `Fire the event of a hook URL made by 'hook create-url', with --payload (JSON)
or the URL's default payload. Needs no cluster ticket. An expired or malformed
URL is refused (exit 2); exits 1 when a handler failed.`,
		Args: exactArgs(1, "one hook URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := hooks.ParseURL(args[0], time.Now())
			if err != nil {
				return usageErrorf("%v", err)
			}
			if payload != "" && !json.Valid([]byte(payload)) {
				return usageErrorf("--payload is not valid JSON: %q", payload)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(wait)*time.Millisecond)
			defer cancel()
			resp, err := client.TriggerHookURL(ctx, u.String(), []byte(payload))
			if err != nil {
				return err
			}
			return a.negative(hookTriggerResult{resp}, resp.IsSuccess)
		},
	}
	cmd.Flags().StringVar(&payload, "payload", "", "event payload (JSON; default: the URL's)")
	waitFlag(cmd, &wait)
	return cmd
}

type hookURLResult struct{ *api.HookCreateURLResponse }

func (r hookURLResult) printHuman(out, note io.Writer) error {
	exp := "never"
	if r.Expires != 0 {
		exp = time.Unix(r.Expires, 0).UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(note, "Hook URL for %s (expires %s, %d peer(s)):\n", r.EventType, exp, r.PeerCount)
	_, err := fmt.Fprintln(out, r.URL)
	return err
}
