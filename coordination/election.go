package coordination

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// ElectionClient is what an Election needs from a cluster; *client.Client
// has it.
type ElectionClient interface {
	LockClient
	LockStatus(context.Context, *api.LockStatusRequest) (*api.LockResponse, error)
}

// ElectionOptions configure an Election. Zero values take the defaults.
type ElectionOptions struct {
	// TTL is how long a term lasts without renewal, on the leader's clock
	// (default 10s): after a leader dies, a new one is elected within about
	// TTL. The leader renews every TTL/3.
	TTL time.Duration
	// PollInterval is how often Observe asks who leads (default 200ms).
	PollInterval time.Duration
}

// Election elects at most one leader among the candidates of a name at a
// time. It is built on the lock "election/NAME": a term is one acquisition
// of that lock, held by the candidate id and renewed in the background, and
// its fencing token is the lock's, so every new term has a strictly larger
// token than all earlier ones. Resign releases the lock at once.
type Election struct {
	c    ElectionClient
	name string
	lock *Lock
	opts ElectionOptions
}

// NewElection returns a handle through which candidate campaigns for name.
// Candidate ids must be unique among the candidates. It makes no call.
func NewElection(c ElectionClient, name, candidate string, opts ElectionOptions) *Election {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	return &Election{c: c, name: name, opts: opts,
		lock: NewLock(c, ElectionLock(name), LockOptions{Holder: candidate, TTL: opts.TTL})}
}

// ElectionLock is the name of the lock behind the election name.
func ElectionLock(name string) string { return "election/" + name }

// Candidate is this handle's candidate id.
func (e *Election) Candidate() string { return e.lock.Holder() }

// Campaign blocks until this candidate leads or ctx ends. The returned
// Leadership renews the term in the background until Resign, or until a
// renewal is refused or the term runs out on this machine's clock: then
// Done is closed and the caller must stop acting as leader.
func (e *Election) Campaign(ctx context.Context) (*Leadership, error) {
	g, err := e.lock.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("campaigning for %q: %w", e.name, err)
	}
	l := &Leadership{e: e, g: g, stop: make(chan struct{}), stopped: make(chan struct{})}
	go l.renew()
	return l, nil
}

// Leader is the current leader of an election.
type Leader struct {
	Candidate    string
	FencingToken uint64
	Deadline     time.Time // on the leader's clock
}

// ErrNoLeader: nobody leads the election at the moment.
var ErrNoLeader = errors.New("coordination: no leader")

// Leader returns who leads now, or ErrNoLeader.
func (e *Election) Leader(ctx context.Context) (*Leader, error) {
	resp, err := e.c.LockStatus(ctx, &api.LockStatusRequest{Key: ElectionLock(e.name)})
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, fmt.Errorf("election %q: %w", e.name, ErrNoLeader)
	}
	return &Leader{Candidate: resp.HolderID, FencingToken: resp.FencingToken, Deadline: time.UnixMilli(resp.DeadlineMs)}, nil
}

// Observe sends the leader each time it changes (nil: nobody leads), first
// the current one, polling every PollInterval, until ctx ends; then it
// closes the channel. Failed polls are skipped.
func (e *Election) Observe(ctx context.Context) <-chan *Leader {
	ch := make(chan *Leader)
	go func() {
		defer close(ch)
		t := time.NewTicker(e.opts.PollInterval)
		defer t.Stop()
		var last *Leader
		sent := false
		for {
			l, err := e.Leader(ctx)
			if errors.Is(err, ErrNoLeader) {
				l, err = nil, nil
			}
			if err == nil && (!sent || !sameTerm(l, last)) {
				select {
				case ch <- l:
				case <-ctx.Done():
					return
				}
				last, sent = l, true
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// sameTerm reports whether a and b (nil: no leader) are the same term.
func sameTerm(a, b *Leader) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Candidate == b.Candidate && a.FencingToken == b.FencingToken
}

// Leadership is one term of a candidate.
type Leadership struct {
	e       *Election
	g       *Guard
	once    sync.Once
	stop    chan struct{}
	stopped chan struct{}
}

// FencingToken is the term's token, strictly larger than every earlier
// term's: pass it to what the leader writes so stale leaders are refused.
func (l *Leadership) FencingToken() uint64 { return l.g.FencingToken() }

// Done is closed when this term is over (resigned, renewal refused, or the
// deadline passed without a successful renewal).
func (l *Leadership) Done() <-chan struct{} { return l.g.Done() }

// renew extends the term every TTL/3 until stopped or lost. A failed call
// is retried at the next tick; the guard's own timer ends the term if no
// renewal succeeds before its deadline.
func (l *Leadership) renew() {
	defer close(l.stopped)
	t := time.NewTicker(l.e.opts.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.g.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.TTL/3)
		err := l.g.Renew(ctx)
		cancel()
		if errors.Is(err, ErrLost) {
			return
		}
	}
}

// Resign ends the term: it stops renewing and releases the lock, so
// another candidate can lead at once. Resigning twice succeeds.
func (l *Leadership) Resign(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	<-l.stopped
	if err := l.g.Release(ctx); err != nil {
		return fmt.Errorf("resigning from %q: %w", l.e.name, err)
	}
	return nil
}
