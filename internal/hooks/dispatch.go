package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// Func is an in-process handler. It runs in a goroutine of Dispatch, once
// per attempt, with ctx bounded by the handler's timeout; a non-nil error
// fails the attempt.
type Func func(ctx context.Context, ev *Event) error

// Options configure a Dispatcher; the zero value is usable.
type Options struct {
	Logger *slog.Logger // default: discard
	// Backoff is the wait before the first retry, doubled for each further
	// one up to MaxBackoff (defaults 100 ms and 10 s).
	Backoff, MaxBackoff time.Duration
	// HTTPClient sends webhooks (default: a client without its own timeout;
	// each attempt is bounded by the handler's timeout).
	HTTPClient *http.Client
}

// Dispatcher delivers events to the handlers whose pattern matches one of
// the event's subjects. It holds two sets of handlers: the configured ones
// (replaced by SetHandlers, from the cluster's stored configuration) and
// in-process subscriptions (Subscribe). A Dispatcher is safe for
// concurrent use; mu guards only the handler maps and is never held while
// a handler runs.
type Dispatcher struct {
	log        *slog.Logger
	backoff    time.Duration
	maxBackoff time.Duration
	http       *http.Client

	mu         sync.Mutex
	configured map[string]*handler // by name
	subs       map[string]*handler // in-process subscriptions, by name
	funcs      map[string]Func     // functions of in_process handlers, by name
	stats      map[string]*stats   // by name; kept across reconfiguration

	total atomic.Uint64 // events dispatched
}

type handler struct {
	cfg api.HookHandler // normalized
	pat Pattern
}

// stats counts the deliveries of one handler; its mutex is a leaf.
type stats struct {
	mu        sync.Mutex
	fired     uint64
	succeeded uint64
	failed    uint64
	attempts  uint64
	latency   time.Duration // sum over fired events
	lastErr   string
}

// New returns a Dispatcher with no handlers.
func New(opts Options) *Dispatcher {
	d := &Dispatcher{
		log: opts.Logger, backoff: opts.Backoff, maxBackoff: opts.MaxBackoff, http: opts.HTTPClient,
		configured: map[string]*handler{}, subs: map[string]*handler{}, funcs: map[string]Func{}, stats: map[string]*stats{},
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.backoff <= 0 {
		d.backoff = 100 * time.Millisecond
	}
	if d.maxBackoff <= 0 {
		d.maxBackoff = 10 * time.Second
	}
	if d.http == nil {
		d.http = &http.Client{}
	}
	return d
}

// Subscribe registers fn as the in-process handler name on pattern, with
// the default timeout and retries. A configured in_process handler of the
// same name (stored in the cluster) uses fn too. Subscriptions live in this
// process only.
func (d *Dispatcher) Subscribe(name, pattern string, fn Func) error {
	h, err := Normalize(api.HookHandler{Name: name, Pattern: pattern, Type: api.HookInProcess})
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("hook %q: nil function", name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.subs[name] = &handler{cfg: h, pat: MustParsePattern(h.Pattern)}
	d.funcs[name] = fn
	return nil
}

// Unsubscribe removes the in-process subscription name.
func (d *Dispatcher) Unsubscribe(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.subs, name)
	delete(d.funcs, name)
}

// SetHandlers replaces the configured handlers. Invalid ones are skipped
// and reported in the returned error; the valid ones are installed anyway.
func (d *Dispatcher) SetHandlers(hs []api.HookHandler) error {
	m := make(map[string]*handler, len(hs))
	var errs []error
	for _, h := range hs {
		n, err := Normalize(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m[n.Name] = &handler{cfg: n, pat: MustParsePattern(n.Pattern)}
	}
	d.mu.Lock()
	d.configured = m
	d.mu.Unlock()
	return errors.Join(errs...)
}

// PutHandler adds or replaces one configured handler.
func (d *Dispatcher) PutHandler(h api.HookHandler) error {
	n, err := Normalize(h)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.configured[n.Name] = &handler{cfg: n, pat: MustParsePattern(n.Pattern)}
	d.mu.Unlock()
	return nil
}

// RemoveHandler removes one configured handler.
func (d *Dispatcher) RemoveHandler(name string) {
	d.mu.Lock()
	delete(d.configured, name)
	d.mu.Unlock()
}

// Result is the outcome of one Dispatch.
type Result struct {
	Dispatched int      // handlers the event matched
	Failures   []string // names of those that failed after their retries, sorted
}

// Wants reports whether an event published on subjects could reach an
// enabled handler, so that callers build only the events someone wants. An
// event not built because of it still counts as processed: see Skipped.
func (d *Dispatcher) Wants(subjects ...string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, set := range []map[string]*handler{d.subs, d.configured} {
		for _, h := range set {
			if *h.cfg.Enabled && matchAny(h.pat, subjects) {
				return true
			}
		}
	}
	return false
}

// Skipped counts an event that no handler wanted as processed.
func (d *Dispatcher) Skipped() { d.total.Add(1) }

// Dispatch delivers ev to every enabled handler whose pattern matches one
// of ev.Subjects, each in its own goroutine with its timeout and retries,
// and returns once all of them have finished. A handler fires at most once
// per call however many subjects it matches.
func (d *Dispatcher) Dispatch(ctx context.Context, ev *Event) Result {
	d.total.Add(1)
	type target struct {
		h  *handler
		fn Func
		st *stats
	}
	var targets []target
	d.mu.Lock()
	for i, set := range []map[string]*handler{d.subs, d.configured} {
		for name, h := range set {
			if !*h.cfg.Enabled || !matchAny(h.pat, ev.Subjects) {
				continue
			}
			if i == 1 && d.subs[name] != nil {
				continue // the subscription of that name wins
			}
			st := d.stats[name]
			if st == nil {
				st = &stats{}
				d.stats[name] = st
			}
			targets = append(targets, target{h, d.funcs[name], st})
		}
	}
	d.mu.Unlock()

	body := ev.JSON()
	var wg sync.WaitGroup
	var fmu sync.Mutex
	res := Result{Dispatched: len(targets)}
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.deliver(ctx, t.h, t.fn, t.st, ev, body); err != nil {
				d.log.Warn("hook delivery failed", "hook", t.h.cfg.Name, "topic", ev.Topic, "err", err)
				fmu.Lock()
				res.Failures = append(res.Failures, t.h.cfg.Name)
				fmu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Strings(res.Failures)
	return res
}

// Matches reports whether an event published on subjects would reach an
// enabled handler: an in-process subscription, a configured handler, or
// one of extra (handlers not installed in d, such as the stored ones a
// follower reads from its replica; invalid ones are ignored).
func (d *Dispatcher) Matches(subjects []string, extra []api.HookHandler) bool {
	d.mu.Lock()
	for _, set := range []map[string]*handler{d.subs, d.configured} {
		for _, h := range set {
			if *h.cfg.Enabled && matchAny(h.pat, subjects) {
				d.mu.Unlock()
				return true
			}
		}
	}
	d.mu.Unlock()
	for _, h := range extra {
		if n, err := Normalize(h); err == nil && *n.Enabled && matchAny(MustParsePattern(n.Pattern), subjects) {
			return true
		}
	}
	return false
}

func matchAny(p Pattern, subjects []string) bool {
	return slices.ContainsFunc(subjects, p.Match)
}

// deliver runs the attempts of one handler for one event.
func (d *Dispatcher) deliver(ctx context.Context, h *handler, fn Func, st *stats, ev *Event, body []byte) error {
	start := time.Now()
	retries := *h.cfg.RetryCount
	wait := d.backoff
	var err error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				err = fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
				attempt = retries + 1
				continue
			case <-time.After(wait):
			}
			wait = min(2*wait, d.maxBackoff)
		}
		actx, cancel := context.WithTimeout(ctx, timeoutOf(&h.cfg))
		err = d.attempt(actx, h, fn, ev, body)
		cancel()
		st.mu.Lock()
		st.attempts++
		st.mu.Unlock()
		if err == nil {
			break
		}
		d.log.Debug("hook attempt failed", "hook", h.cfg.Name, "attempt", attempt+1, "err", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.fired++
	st.latency += time.Since(start)
	if err != nil {
		st.failed++
		st.lastErr = err.Error()
		return err
	}
	st.succeeded++
	return nil
}

func (d *Dispatcher) attempt(ctx context.Context, h *handler, fn Func, ev *Event, body []byte) error {
	switch h.cfg.Type {
	case api.HookInProcess:
		if fn == nil {
			return fmt.Errorf("no in-process function is registered for hook %q in this node", h.cfg.Name)
		}
		return fn(ctx, ev)
	case api.HookShell:
		return runShell(ctx, h.cfg.Command, ev, body)
	case api.HookWebhook:
		return d.postWebhook(ctx, &h.cfg, ev, body)
	}
	return fmt.Errorf("hook %q: unknown type %q", h.cfg.Name, h.cfg.Type)
}

// Metrics returns the counters of every handler (or of the one named),
// sorted by name, and the number of events dispatched.
func (d *Dispatcher) Metrics(name string) api.HookMetricsResponse {
	d.mu.Lock()
	names := make([]string, 0, len(d.stats))
	sts := make(map[string]*stats, len(d.stats))
	for n, st := range d.stats {
		sts[n] = st
		names = append(names, n)
	}
	for _, set := range []map[string]*handler{d.configured, d.subs} {
		for n := range set {
			if sts[n] == nil {
				sts[n] = &stats{}
				names = append(names, n)
			}
		}
	}
	d.mu.Unlock()
	sort.Strings(names)
	out := api.HookMetricsResponse{TotalEventsProcessed: d.total.Load(), Handlers: []api.HookHandlerMetrics{}}
	for _, n := range names {
		if name != "" && n != name {
			continue
		}
		st := sts[n]
		st.mu.Lock()
		m := api.HookHandlerMetrics{Name: n, Fired: st.fired, Succeeded: st.succeeded, Failed: st.failed, Attempts: st.attempts, LastError: st.lastErr}
		if st.fired > 0 {
			m.AvgLatencyMs = (st.latency / time.Duration(st.fired)).Milliseconds()
		}
		st.mu.Unlock()
		out.Handlers = append(out.Handlers, m)
	}
	return out
}
