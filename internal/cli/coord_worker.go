package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
)

type workerResult struct{ *api.WorkerResponse }

func (r workerResult) printHuman(out, _ io.Writer) error {
	p, err := stickyPrintf(out)
	switch {
	case !r.IsSuccess:
		p("FAILED: %s\n", r.Error)
	case r.Operation == "register":
		p("Registered worker %s in pool %s (fencing token %d, deadline %s)\n", r.WorkerID, r.Pool, r.FencingToken, msTime(r.DeadlineMs))
	case r.Operation == "claim" || r.Operation == "assign" || r.Operation == "steal" || r.Operation == "tasks":
		if r.Victim != "" {
			p("Stole %d tasks from %s\n", len(r.Tasks), r.Victim)
		}
		if len(r.Tasks) == 0 {
			p("(no tasks)\n")
		}
		for _, t := range r.Tasks {
			p("%s\t%s\t%s\tattempts=%d", t.TaskID, t.State, t.WorkerID, t.Attempts)
			if t.LastError != "" {
				p("\terror=%q", t.LastError)
			}
			p("\t%s\n", humanValue(t.Payload))
		}
	case r.Operation == "status":
		p("Pool %s: %d pending, %d assigned, %d started\n", r.Pool, r.Counts[api.WorkerTaskPending], r.Counts[api.WorkerTaskAssigned], r.Counts[api.WorkerTaskStarted])
		for _, w := range r.Workers {
			live := "live"
			if !w.Live {
				live = "dead"
			}
			p("%s\t%s\tload %d/%d\tstarted %d\tcompleted %d\ttoken %d\n", w.WorkerID, live, w.Load, w.Capacity, w.Started, w.Completed, w.FencingToken)
		}
	default:
		p("OK: %s %s\n", r.Operation, r.TaskID+r.WorkerID)
	}
	return *err
}

// workerTaskJSON prints a task's payload as text (or {"base64": …}).
type workerTaskJSON struct {
	api.WorkerTask
	Payload bytesJSON `json:"payload"`
}

// MarshalJSON always prints the tasks of claim, assign, steal and tasks (also
// when there are none), with readable payloads.
func (r workerResult) MarshalJSON() ([]byte, error) {
	type plain api.WorkerResponse
	p := (*plain)(r.WorkerResponse)
	if !slices.Contains([]string{"claim", "assign", "steal", "tasks"}, r.Operation) || !r.IsSuccess {
		return json.Marshal(p)
	}
	tasks := make([]workerTaskJSON, len(r.Tasks))
	for i, t := range r.Tasks {
		tasks[i] = workerTaskJSON{t, bytesJSON(t.Payload)}
	}
	return json.Marshal(struct {
		*plain
		Tasks []workerTaskJSON `json:"tasks"`
	}{p, tasks})
}

func (a *app) newWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Worker coordination: pools of workers with capacity, task placement and work stealing",
		Long: `Worker coordination (spec 3.11). A worker registers in a pool with a
capacity (1..1000 tasks) and a TTL (default 30000 ms, at most 24 h); each
registration gets a fencing token strictly greater than any the pool issued
before, and every later call needs it ("fencing token mismatch" otherwise).
A worker whose deadline passes on the leader's clock without a heartbeat is
dead: it gets no new work and its unfinished tasks are claimable again.
deregister deletes the worker's record when it holds no task; a dead
worker's record that no task names any more is deleted when a new worker
id finds the pool at its limit of 1000 workers live or named by tasks.

Tasks are submitted to a pool with an id and a payload (≤ 64 KiB); a pool
holds at most 10000 unfinished tasks. claim gives a worker up to
min(--max, free capacity) pending tasks (--max ≤ 16); assign places up to
--max pending tasks on the pool's live workers, each on the least loaded one
(load/capacity) with room. start marks a task started (started tasks are
never stolen); complete deletes it and frees capacity; fail returns it to
pending. steal moves up to --max not started tasks of the most loaded live
worker to the caller, never more than its free capacity nor half of the
victim's not started tasks.

Exit codes: 0 done, 1 refused, 2 usage error, 3 cluster error.
--json prints {operation, pool, worker_id, task_id, is_success,
fencing_token, deadline_ms, victim, tasks, workers, counts, error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var (
		capacity, max, limit int
		ttl                  msValue
		token                uint64
		errMsg, state        string
	)
	run := func(f func(coordination.WorkerClient, *cobra.Command, []string) (*api.WorkerResponse, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				wc, ok := c.(coordination.WorkerClient)
				if !ok {
					return fmt.Errorf("this connection does not support worker coordination")
				}
				resp, err := f(wc, cmd, args)
				if err != nil {
					return err
				}
				return a.negative(workerResult{resp}, resp.IsSuccess)
			})
		}
	}
	register := &cobra.Command{
		Use:   "register POOL WORKER --capacity N [--ttl 30000]",
		Short: "Register a worker; prints its fencing token",
		Args:  exactArgs(2, "POOL WORKER"),
		RunE: run(func(c coordination.WorkerClient, cmd *cobra.Command, args []string) (*api.WorkerResponse, error) {
			return c.WorkerRegister(cmd.Context(), &api.WorkerRequest{Pool: args[0], WorkerID: args[1], Capacity: capacity, TTLMs: int64(ttl)})
		}),
	}
	register.Flags().IntVar(&capacity, "capacity", 0, "tasks the worker may hold at once, 1..1000 (required)")
	_ = register.MarkFlagRequired("capacity")
	ttl = api.DefaultWorkerTTLMs
	register.Flags().Var(&ttl, "ttl", "liveness TTL in milliseconds or as a duration (at most 24h)")

	// tokenCmd is a command of a registered worker: POOL WORKER [TASK].
	tokenCmd := func(use, short string, withTask bool, f func(coordination.WorkerClient, *cobra.Command, *api.WorkerRequest) (*api.WorkerResponse, error)) *cobra.Command {
		n, names := 2, "POOL WORKER"
		if withTask {
			n, names = 3, "POOL WORKER TASK"
		}
		c := &cobra.Command{Use: use, Short: short, Args: exactArgs(n, names),
			RunE: run(func(c coordination.WorkerClient, cmd *cobra.Command, args []string) (*api.WorkerResponse, error) {
				r := &api.WorkerRequest{Pool: args[0], WorkerID: args[1], FencingToken: token}
				if withTask {
					r.TaskID = args[2]
				}
				return f(c, cmd, r)
			})}
		c.Flags().Uint64Var(&token, "fencing-token", 0, "fencing token of the worker's registration (required)")
		_ = c.MarkFlagRequired("fencing-token")
		return c
	}
	heartbeat := tokenCmd("heartbeat POOL WORKER --fencing-token T", "Extend a worker's registration to now + its TTL", false, func(c coordination.WorkerClient, cmd *cobra.Command, r *api.WorkerRequest) (*api.WorkerResponse, error) {
		return c.WorkerHeartbeat(cmd.Context(), r)
	})
	deregister := tokenCmd("deregister POOL WORKER --fencing-token T", "End a worker's registration; its tasks become pending", false, func(c coordination.WorkerClient, cmd *cobra.Command, r *api.WorkerRequest) (*api.WorkerResponse, error) {
		return c.WorkerDeregister(cmd.Context(), r)
	})
	claim := tokenCmd("claim POOL WORKER --fencing-token T [--max 1]", "Assign up to min(--max, free capacity) pending tasks to the worker", false, func(c coordination.WorkerClient, cmd *cobra.Command, r *api.WorkerRequest) (*api.WorkerResponse, error) {
		r.Max = max
		return c.WorkerClaim(cmd.Context(), r)
	})
	claim.Flags().IntVar(&max, "max", 1, "at most this many tasks (1..16)")
	steal := tokenCmd("steal POOL WORKER --fencing-token T [--max 1]", "Take not started tasks from the most loaded live worker", false, func(c coordination.WorkerClient, cmd *cobra.Command, r *api.WorkerRequest) (*api.WorkerResponse, error) {
		r.Max = max
		return c.WorkerSteal(cmd.Context(), r)
	})
	steal.Flags().IntVar(&max, "max", 1, "at most this many tasks (1..16; never more than half of the victim's not started tasks)")
	start := tokenCmd("start POOL WORKER TASK --fencing-token T", "Mark one of the worker's tasks started (no longer stolen)", true, func(c coordination.WorkerClient, cmd *cobra.Command, r *api.WorkerRequest) (*api.WorkerResponse, error) {
		return c.WorkerStart(cmd.Context(), r)
	})
	complete := tokenCmd("complete POOL WORKER TASK --fencing-token T", "Finish one of the worker's tasks and free its capacity", true, func(c coordination.WorkerClient, cmd *cobra.Command, r *api.WorkerRequest) (*api.WorkerResponse, error) {
		return c.WorkerComplete(cmd.Context(), r)
	})
	fail := tokenCmd("fail POOL WORKER TASK --fencing-token T [--error MSG]", "Return one of the worker's tasks to pending", true, func(c coordination.WorkerClient, cmd *cobra.Command, r *api.WorkerRequest) (*api.WorkerResponse, error) {
		r.Error = errMsg
		return c.WorkerFail(cmd.Context(), r)
	})
	fail.Flags().StringVar(&errMsg, "error", "", "why it failed (≤ 1024 bytes)")

	submit := &cobra.Command{
		Use:   "submit POOL TASK [PAYLOAD]",
		Short: "Add a pending task to a pool",
		Args:  rangeArgs(2, 3, "POOL TASK [PAYLOAD]"),
		RunE: run(func(c coordination.WorkerClient, cmd *cobra.Command, args []string) (*api.WorkerResponse, error) {
			r := &api.WorkerRequest{Pool: args[0], TaskID: args[1]}
			if len(args) == 3 {
				r.Payload = []byte(args[2])
			}
			return c.WorkerSubmit(cmd.Context(), r)
		}),
	}
	assign := &cobra.Command{
		Use:   "assign POOL [--max 1]",
		Short: "Place pending tasks on the pool's least loaded live workers",
		Args:  exactArgs(1, "one POOL"),
		RunE: run(func(c coordination.WorkerClient, cmd *cobra.Command, args []string) (*api.WorkerResponse, error) {
			return c.WorkerAssign(cmd.Context(), &api.WorkerRequest{Pool: args[0], Max: max})
		}),
	}
	assign.Flags().IntVar(&max, "max", 1, "at most this many tasks (1..16)")
	status := &cobra.Command{
		Use:   "status POOL",
		Short: "Show a pool's workers (capacity, load, liveness) and task counts by state",
		Args:  exactArgs(1, "one POOL"),
		RunE: run(func(c coordination.WorkerClient, cmd *cobra.Command, args []string) (*api.WorkerResponse, error) {
			return c.WorkerStatus(cmd.Context(), &api.WorkerRequest{Pool: args[0]})
		}),
	}
	tasks := &cobra.Command{
		Use:   "tasks POOL [--state pending|assigned|started] [--limit 100]",
		Short: "List a pool's unfinished tasks",
		Args:  exactArgs(1, "one POOL"),
		RunE: run(func(c coordination.WorkerClient, cmd *cobra.Command, args []string) (*api.WorkerResponse, error) {
			return c.WorkerTasks(cmd.Context(), &api.WorkerRequest{Pool: args[0], State: state, Limit: limit})
		}),
	}
	tasks.Flags().StringVar(&state, "state", "", "only tasks in this state: pending, assigned or started")
	tasks.Flags().IntVar(&limit, "limit", api.DefaultWorkerLimit, "at most this many tasks (≤ 1000)")
	cmd.AddCommand(register, heartbeat, deregister, submit, claim, assign, start, complete, fail, steal, status, tasks)
	return cmd
}
