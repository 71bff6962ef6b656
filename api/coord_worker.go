package api

// Operation names of the worker coordinator (spec 3.11).
const (
	OpWorkerRegister   = "worker.register"
	OpWorkerHeartbeat  = "worker.heartbeat"
	OpWorkerDeregister = "worker.deregister"
	OpWorkerSubmit     = "worker.submit"
	OpWorkerClaim      = "worker.claim"
	OpWorkerAssign     = "worker.assign"
	OpWorkerStart      = "worker.start"
	OpWorkerComplete   = "worker.complete"
	OpWorkerFail       = "worker.fail"
	OpWorkerSteal      = "worker.steal"
	OpWorkerStatus     = "worker.status"
	OpWorkerTasks      = "worker.tasks"
)

// Limits and defaults of the worker coordinator.
const (
	MaxWorkerCapacity    = 1_000      // tasks one worker may hold
	MaxWorkersPerPool    = 1_000      // workers of one pool that are live or named by tasks
	MaxWorkerPoolTasks   = 10_000     // unfinished tasks of one pool
	MaxWorkerPayloadSize = 64 << 10   // bytes of a task payload
	MaxWorkerTaskIDSize  = 256        // bytes of a task id
	MaxWorkerClaim       = 16         // tasks of one claim or steal
	MaxWorkerTTLMs       = 86_400_000 // 24 h
	MaxWorkerErrorSize   = 1024       // bytes of a failure message
	DefaultWorkerTTLMs   = 30_000
	DefaultWorkerLimit   = 100
	MaxWorkerList        = 1_000 // tasks of one listing
)

// Task states. A task assigned to (or started by) a worker that is no
// longer live is reported, and claimed again, as pending.
const (
	WorkerTaskPending  = "pending"
	WorkerTaskAssigned = "assigned"
	WorkerTaskStarted  = "started"
)

// WorkerRequest is the request of every worker coordinator operation.
//
// register: Pool, WorkerID, Capacity (1..1000), TTLMs (default 30000);
// the FencingToken answered comes from the pool's counter, larger than any
// token the pool issued before (to any id, deleted records included).
// heartbeat, deregister: FencingToken. submit: TaskID, Payload.
// claim, steal: FencingToken, Max (default 1, ≤ 16). assign: Max. start, complete:
// FencingToken, TaskID. fail: FencingToken, TaskID, Error. status: Pool.
// tasks: State ("" = all), Limit (default 100, ≤ 1000).
type WorkerRequest struct {
	Pool         string `cbor:"pool,omitempty" json:"pool,omitempty"`
	WorkerID     string `cbor:"worker_id,omitempty" json:"worker_id,omitempty"`
	Capacity     int    `cbor:"capacity,omitempty" json:"capacity,omitempty"`
	TTLMs        int64  `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
	FencingToken uint64 `cbor:"fencing_token,omitempty" json:"fencing_token,omitempty"`
	TaskID       string `cbor:"task_id,omitempty" json:"task_id,omitempty"`
	Payload      []byte `cbor:"payload,omitempty" json:"payload,omitempty"`
	Max          int    `cbor:"max,omitempty" json:"max,omitempty"`
	Error        string `cbor:"error,omitempty" json:"error,omitempty"`
	State        string `cbor:"state,omitempty" json:"state,omitempty"`
	Limit        int    `cbor:"limit,omitempty" json:"limit,omitempty"`
}

// WorkerInfo is one worker of a pool. Load counts its assigned and
// started tasks; Live is false once its deadline (leader clock) passed or
// it deregistered, and then it holds nothing. A dead worker is listed until
// its record is deleted: at once by a deregistration without tasks, else
// by the pruning of a registration that finds the pool at its limit once
// no task names it.
type WorkerInfo struct {
	WorkerID     string `cbor:"worker_id" json:"worker_id"`
	Capacity     int    `cbor:"capacity" json:"capacity"`
	Load         int    `cbor:"load" json:"load"`
	Started      int    `cbor:"started" json:"started"`
	Completed    uint64 `cbor:"completed" json:"completed"`
	Live         bool   `cbor:"live" json:"live"`
	FencingToken uint64 `cbor:"fencing_token" json:"fencing_token"`
	TTLMs        int64  `cbor:"ttl_ms" json:"ttl_ms"`
	DeadlineMs   int64  `cbor:"deadline_ms" json:"deadline_ms"`
}

// WorkerTask is one unfinished task of a pool.
type WorkerTask struct {
	TaskID        string `cbor:"task_id" json:"task_id"`
	State         string `cbor:"state" json:"state"`
	WorkerID      string `cbor:"worker_id,omitempty" json:"worker_id,omitempty"`
	Attempts      int    `cbor:"attempts" json:"attempts"`
	Payload       []byte `cbor:"payload" json:"payload"`
	SubmittedAtMs int64  `cbor:"submitted_at_ms" json:"submitted_at_ms"`
	LastError     string `cbor:"last_error,omitempty" json:"last_error,omitempty"`
}

// WorkerResponse is the answer of every worker coordinator operation.
// Counts (status) maps each task state to its number of tasks.
type WorkerResponse struct {
	Operation    string         `cbor:"operation" json:"operation"`
	Pool         string         `cbor:"pool,omitempty" json:"pool,omitempty"`
	WorkerID     string         `cbor:"worker_id,omitempty" json:"worker_id,omitempty"`
	TaskID       string         `cbor:"task_id,omitempty" json:"task_id,omitempty"`
	IsSuccess    bool           `cbor:"is_success" json:"is_success"`
	FencingToken uint64         `cbor:"fencing_token,omitempty" json:"fencing_token,omitempty"`
	DeadlineMs   int64          `cbor:"deadline_ms,omitempty" json:"deadline_ms,omitempty"`
	Victim       string         `cbor:"victim,omitempty" json:"victim,omitempty"`
	Tasks        []WorkerTask   `cbor:"tasks,omitempty" json:"tasks,omitempty"`
	Workers      []WorkerInfo   `cbor:"workers,omitempty" json:"workers,omitempty"`
	Counts       map[string]int `cbor:"counts,omitempty" json:"counts,omitempty"`
	Error        string         `cbor:"error,omitempty" json:"error,omitempty"`
}
