package cli

import (
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
)

type queueResult struct{ *api.QueueResponse }

func (r queueResult) printHuman(out, _ io.Writer) error {
	p, err := stickyPrintf(out)
	switch {
	case !r.IsSuccess:
		p("FAILED: %s\n", r.Error)
	case r.Operation == "enqueue" && r.Duplicate:
		p("Duplicate of item %d\n", r.ItemID)
	case r.Operation == "enqueue":
		for _, id := range r.ItemIDs {
			p("Enqueued item %d\n", id)
		}
	case r.Operation == "dequeue" || r.Operation == "peek" || r.Operation == "dlq":
		if len(r.Items) == 0 {
			p("(no items)\n")
		}
		for _, it := range r.Items {
			p("%d\tattempts=%d", it.ItemID, it.DeliveryAttempts)
			if it.ReceiptHandle != "" {
				p("\treceipt=%s", it.ReceiptHandle)
			}
			if it.LastError != "" {
				p("\terror=%q", it.LastError)
			}
			p("\t%s\n", humanValue(it.Payload))
		}
	case r.Operation == "status":
		p("%s: %d visible, %d pending, %d in the DLQ\n", r.Name, r.VisibleCount, r.PendingCount, r.DLQCount)
	case r.Operation == "delete":
		p("Deleted queue %s (%d items)\n", r.Name, r.ItemsDeleted)
	case r.Operation == "nack" && r.MovedToDLQ:
		p("Moved item %d to the DLQ\n", r.ItemID)
	case r.Operation == "extend":
		p("Item %d hidden until %s\n", r.ItemID, msTime(r.VisibleAtMs))
	default:
		p("OK\n")
	}
	return *err
}

// humanValue renders a payload for a listing.
func humanValue(b []byte) string {
	s := string(bytesJSONString(b))
	if len(s) > humanMaxValue {
		s = s[:humanMaxValue] + "…"
	}
	return s
}

func bytesJSONString(b []byte) string {
	out, _ := json.Marshal(bytesJSON(b))
	var s string
	if json.Unmarshal(out, &s) == nil {
		return s
	}
	return string(out)
}

func (a *app) queueCall(f func(c coordRemote) (*api.QueueResponse, error)) error {
	return a.withCoord(func(c coordRemote) error {
		resp, err := f(c)
		if err != nil {
			return err
		}
		return a.negative(queueResult{resp}, resp.IsSuccess)
	})
}

func (a *app) newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "FIFO queues with visibility timeouts and a dead-letter queue",
		Long: `FIFO queues with visibility timeouts, a dead-letter queue (DLQ), message
groups (one item in flight per group) and 5-minute deduplication.

A dequeued item is hidden for its visibility timeout; ack deletes it, nack
makes it visible again (or moves it to the DLQ with --to-dlq or when it ran
out of attempts). Items not acked in time are delivered again with
delivery_attempts + 1; their old receipt handle stops working.

Exit codes: 0 done, 1 refused (stale receipt, queue not found), 2 usage
error, 3 cluster error.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}

	var cr api.QueueCreateRequest
	var crVis, crTTL msValue = 30000, 0
	create := &cobra.Command{
		Use:   "create Q [--visibility-timeout 30000] [--ttl 0] [--max-attempts 3]",
		Short: "Create a queue (or change its settings)",
		Args:  exactArgs(1, "one queue name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := cr
			req.Name, req.VisibilityTimeoutMs, req.TTLMs = args[0], int64(crVis), int64(crTTL)
			if req.MaxAttempts == 0 {
				req.MaxAttempts = -1
			}
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) { return c.QueueCreate(cmd.Context(), &req) })
		},
	}
	create.Flags().Var(&crVis, "visibility-timeout", "how long a dequeued item stays hidden, in milliseconds")
	create.Flags().Var(&crTTL, "ttl", "default item TTL in milliseconds (0 = none)")
	create.Flags().Int64Var(&cr.MaxAttempts, "max-attempts", 3, "deliveries before an item goes to the DLQ (0 = unlimited)")

	del := &cobra.Command{
		Use:   "delete Q",
		Short: "Delete a queue with its items and DLQ",
		Args:  exactArgs(1, "one queue name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueDelete(cmd.Context(), &api.QueueRequest{Name: args[0]})
			})
		},
	}

	var enq api.QueueNewItem
	var enqTTL msValue
	enqueue := &cobra.Command{
		Use:   "enqueue Q PAYLOAD [--ttl MS] [--group G] [--dedup ID]",
		Short: "Append an item (creates a missing queue with the defaults)",
		Args:  exactArgs(2, "a queue name and a PAYLOAD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			it := enq
			it.Payload, it.TTLMs = []byte(args[1]), int64(enqTTL)
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueEnqueue(cmd.Context(), &api.QueueEnqueueRequest{Name: args[0], Items: []api.QueueNewItem{it}})
			})
		},
	}
	enqueue.Flags().Var(&enqTTL, "ttl", "item TTL in milliseconds (default: the queue's)")
	enqueue.Flags().StringVar(&enq.Group, "group", "", "message group (FIFO, one in flight per group)")
	enqueue.Flags().StringVar(&enq.DedupID, "dedup", "", "dedup id: a repeat within 5 minutes returns the first id")

	var batchJSON string
	enqueueBatch := &cobra.Command{
		Use:   `enqueue-batch Q --items '[{"payload":"a","group":"g","dedup_id":"d","ttl_ms":1000},…]'`,
		Short: "Append up to 100 items in one operation",
		Args:  exactArgs(1, "one queue name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []struct {
				Payload string `json:"payload"`
				TTLMs   int64  `json:"ttl_ms"`
				Group   string `json:"group"`
				DedupID string `json:"dedup_id"`
			}
			if err := json.Unmarshal([]byte(batchJSON), &raw); err != nil {
				return usageErrorf("--items: %v", err)
			}
			items := make([]api.QueueNewItem, len(raw))
			for i, r := range raw {
				items[i] = api.QueueNewItem{Payload: []byte(r.Payload), TTLMs: r.TTLMs, Group: r.Group, DedupID: r.DedupID}
			}
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueEnqueue(cmd.Context(), &api.QueueEnqueueRequest{Name: args[0], Items: items})
			})
		},
	}
	enqueueBatch.Flags().StringVar(&batchJSON, "items", "", "JSON array of items (required)")
	_ = enqueueBatch.MarkFlagRequired("items")

	dequeueCmd := func(use string, wait bool) *cobra.Command {
		var consumer string
		var maxItems int
		var vis, waitMs msValue
		c := &cobra.Command{
			Use:   use,
			Short: "Take visible items, hiding them for --visibility ms",
			Args:  exactArgs(1, "one queue name"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
					opts := coordination.DequeueOptions{Consumer: consumer, Max: maxItems, Visibility: time.Duration(vis) * time.Millisecond}
					if wait {
						opts.Wait = time.Duration(waitMs) * time.Millisecond
					}
					items, err := coordination.NewQueue(c, args[0]).Dequeue(cmd.Context(), opts)
					if err != nil {
						return nil, err
					}
					if items == nil {
						items = []api.QueueItem{}
					}
					return &api.QueueResponse{Operation: "dequeue", Name: args[0], IsSuccess: true, Items: items}, nil
				})
			},
		}
		c.Flags().StringVar(&consumer, "consumer", "", "consumer id (required)")
		_ = c.MarkFlagRequired("consumer")
		c.Flags().IntVar(&maxItems, "max", 1, "items at most (1..100)")
		c.Flags().Var(&vis, "visibility", "visibility timeout in milliseconds (default: the queue's)")
		if wait {
			waitMs = 5000
			c.Flags().Var(&waitMs, "wait", "how long to wait for an item, in milliseconds")
		}
		return c
	}
	dequeue := dequeueCmd("dequeue Q --consumer C [--max 1] [--visibility MS]", false)
	dequeueWait := dequeueCmd("dequeue-wait Q --consumer C [--max 1] [--visibility MS] [--wait 5000]", true)

	listCmd := func(use, short string, dflt int, f func(coordRemote, *cobra.Command, *api.QueueRequest) (*api.QueueResponse, error)) *cobra.Command {
		var maxItems int
		c := &cobra.Command{Use: use, Short: short, Args: exactArgs(1, "one queue name"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
					return f(c, cmd, &api.QueueRequest{Name: args[0], Max: maxItems})
				})
			}}
		c.Flags().IntVar(&maxItems, "max", dflt, "items at most (1..100)")
		return c
	}
	peek := listCmd("peek Q [--max 10]", "Show the items a dequeue would take, changing nothing", 10,
		func(c coordRemote, cmd *cobra.Command, r *api.QueueRequest) (*api.QueueResponse, error) {
			return c.QueuePeek(cmd.Context(), r)
		})
	dlq := listCmd("dlq Q [--max 10]", "List dead-lettered items", 10,
		func(c coordRemote, cmd *cobra.Command, r *api.QueueRequest) (*api.QueueResponse, error) {
			return c.QueueDLQ(cmd.Context(), r)
		})

	ack := &cobra.Command{
		Use:   "ack Q RECEIPT",
		Short: "Delete a delivered item",
		Args:  exactArgs(2, "a queue name and a RECEIPT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueAck(cmd.Context(), &api.QueueReceiptRequest{Name: args[0], ReceiptHandle: args[1]})
			})
		},
	}
	var toDLQ bool
	var nackErr string
	nack := &cobra.Command{
		Use:   "nack Q RECEIPT [--to-dlq] [--error MSG]",
		Short: "Give a delivered item back (or move it to the DLQ)",
		Args:  exactArgs(2, "a queue name and a RECEIPT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueNack(cmd.Context(), &api.QueueReceiptRequest{Name: args[0], ReceiptHandle: args[1], ToDLQ: toDLQ, Error: nackErr})
			})
		},
	}
	nack.Flags().BoolVar(&toDLQ, "to-dlq", false, "move the item to the DLQ")
	nack.Flags().StringVar(&nackErr, "error", "", "why the item failed (kept with it)")
	var add msValue
	extend := &cobra.Command{
		Use:   "extend Q RECEIPT --add MS",
		Short: "Hide a pending item for longer",
		Args:  exactArgs(2, "a queue name and a RECEIPT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueExtend(cmd.Context(), &api.QueueReceiptRequest{Name: args[0], ReceiptHandle: args[1], AddMs: int64(add)})
			})
		},
	}
	extend.Flags().Var(&add, "add", "milliseconds to add (required)")
	_ = extend.MarkFlagRequired("add")
	status := &cobra.Command{
		Use:   "status Q",
		Short: "Count visible, pending and dead-lettered items",
		Args:  exactArgs(1, "one queue name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueStatus(cmd.Context(), &api.QueueRequest{Name: args[0]})
			})
		},
	}
	redrive := &cobra.Command{
		Use:   "redrive Q ITEM_ID",
		Short: "Move a dead-lettered item back to the queue",
		Args:  exactArgs(2, "a queue name and an ITEM_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || id == 0 {
				return usageErrorf("ITEM_ID %q is not a positive integer", args[1])
			}
			return a.queueCall(func(c coordRemote) (*api.QueueResponse, error) {
				return c.QueueRedrive(cmd.Context(), &api.QueueRequest{Name: args[0], ItemID: id})
			})
		},
	}
	cmd.AddCommand(create, del, enqueue, enqueueBatch, dequeue, dequeueWait, peek, ack, nack, extend, status, dlq, redrive)
	return cmd
}
