package linearize

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
)

// pending is the return time of an operation whose outcome is unknown until
// Operations replaces it with the end of the history.
const pending = math.MaxInt64

// History records operations made through it, with call and return times on
// one monotonic clock. It is safe for concurrent use by many clients.
type History struct {
	start time.Time

	mu  sync.Mutex // guards the fields below
	ops []porcupine.Operation
	n   Counts
}

// Counts summarises a history.
type Counts struct {
	OK      int // operations with a definite answer
	Unknown int // writes whose outcome is unknown
	Failed  int // reads that failed and writes certainly refused (not recorded: they changed nothing)
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

func (h *History) now() int64 { return int64(time.Since(h.start)) }

// record adds one operation; with err != nil a write is recorded as
// possibly applied and a read is dropped.
func (h *History) record(clientID int, in Input, call int64, out Output, err error) {
	ret := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if in.Kind == Get || !Indeterminate(err) {
			h.n.Failed++ // changed nothing: leave it out
			return
		}
		out = Output{Unknown: true}
		ret = pending
		h.n.Unknown++
	} else {
		h.n.OK++
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: clientID, Input: in, Call: call, Output: out, Return: ret, Metadata: errText(err)})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Counts returns the counts so far.
func (h *History) Counts() Counts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Operations returns a copy of the history for porcupine, with the return
// time of every unknown write set just past the last event.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	var end int64
	for _, op := range ops {
		end = max(end, op.Call)
		if op.Return != pending {
			end = max(end, op.Return)
		}
	}
	for i := range ops {
		if ops[i].Return == pending {
			ops[i].Return = end + 1
		}
	}
	return ops
}

// Client records the operations of one logical client (one porcupine
// ClientId) made through c.
type Client struct {
	h  *History
	id int
	c  *client.Client
}

// Client wraps c as client id (0-based, unique per concurrent caller).
func (h *History) Client(id int, c *client.Client) *Client { return &Client{h: h, id: id, c: c} }

// Get reads key linearizably.
func (c *Client) Get(ctx context.Context, key string) (Output, error) {
	in := Input{Kind: Get, Key: key}
	call := c.h.now()
	r, err := c.c.Get(ctx, &api.GetRequest{Key: []byte(key)})
	var out Output
	if err == nil && r.KV != nil {
		out = Output{Found: true, Value: string(r.KV.Value)}
	}
	c.h.record(c.id, in, call, out, err)
	return out, err
}

// Put writes key.
func (c *Client) Put(ctx context.Context, key, value string) error {
	in := Input{Kind: Put, Key: key, Value: value}
	call := c.h.now()
	_, err := c.c.Put(ctx, &api.PutRequest{Key: []byte(key), Value: []byte(value)})
	c.h.record(c.id, in, call, Output{}, err)
	return err
}

// CAS sets key to value if it holds expected, or, with mustNotExist, if it
// is absent.
func (c *Client) CAS(ctx context.Context, key, expected, value string, mustNotExist bool) (bool, error) {
	in := Input{Kind: CAS, Key: key, Value: value, Expected: expected, MustNotExist: mustNotExist}
	call := c.h.now()
	r, err := c.c.CAS(ctx, &api.CASRequest{Key: []byte(key), Expected: []byte(expected), MustNotExist: mustNotExist, NewValue: []byte(value)})
	var out Output
	if err == nil {
		out.Succeeded = r.Succeeded
	}
	c.h.record(c.id, in, call, out, err)
	return out.Succeeded, err
}

// Delete deletes key.
func (c *Client) Delete(ctx context.Context, key string) (bool, error) {
	in := Input{Kind: Delete, Key: key}
	call := c.h.now()
	r, err := c.c.Delete(ctx, &api.DeleteRequest{Key: []byte(key)})
	var out Output
	if err == nil {
		out.Found = r.Existed
	}
	c.h.record(c.id, in, call, out, err)
	return out.Found, err
}

// Result is the verdict on a history.
type Result struct {
	Verdict porcupine.CheckResult // Ok, Illegal, or Unknown (checker timed out)
	Ops     int
	Counts  Counts
	Elapsed time.Duration // time spent checking
	info    porcupine.LinearizationInfo
}

// Check checks the history, giving up after timeout (0: no limit) with
// verdict Unknown.
func (h *History) Check(timeout time.Duration) Result {
	ops := h.Operations()
	start := time.Now()
	verdict, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	return Result{Verdict: verdict, Ops: len(ops), Counts: h.Counts(), Elapsed: time.Since(start), info: info}
}

// WriteHTML writes porcupine's visualization of the checked history to
// path: for an Illegal history it shows the longest linearizable prefix of
// each key and the operation that cannot follow it.
func (r Result) WriteHTML(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing visualization: %w", err)
	}
	if err := porcupine.Visualize(Model, r.info, f); err != nil {
		f.Close()
		return fmt.Errorf("writing visualization %s: %w", path, err)
	}
	return f.Close()
}

// Indeterminate reports whether err leaves a write's outcome unknown. Only
// answers that prove the write was refused before it reached the state
// machine are determinate; everything else (timeouts, UNAVAILABLE, and
// NOT_LEADER, which a follower also answers when forwarding to the leader
// failed after the leader may have applied the write) is unknown.
func Indeterminate(err error) bool {
	if err == nil {
		return false
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case api.CodeInvalidArgument, api.CodeUnauthorized, api.CodeNotInitialized, api.CodeUnimplemented, api.CodeResourceExhausted:
			return false
		}
	}
	return true
}
