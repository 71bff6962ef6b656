package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// WatchOptions configures a watch.
type WatchOptions struct {
	// FromRevision is the first revision to deliver; 0 means from now (the
	// next revision the first node answering applies).
	FromRevision uint64
	// PrevValue asks for each event's previous value.
	PrevValue bool
	// Buffer is the capacity of the event channel (default 64). A consumer
	// slower than the writes lags behind, never grows memory: the node holds
	// back the stream, and the watch ends with an api.CompactedError if the
	// node's history no longer reaches back to where the consumer is.
	Buffer int
}

// WatchEvent is one item of a watch channel: a change, or, as the last item
// before the channel closes, Err saying why the watch ended.
type WatchEvent struct {
	api.WatchEvent
	Err error
}

// watchIdle is how long a watch stream may stay silent before the client
// gives up on the node; servers send progress frames every 2s.
const watchIdle = 10 * time.Second

// watchDial bounds one attempt to open a watch on one node, so that a dead
// node does not hold the watch back for long.
const watchDial = 3 * time.Second

// Watch streams every change to keys starting with prefix (empty: all keys)
// from opts.FromRevision on, in revision order, each exactly once. It returns
// once a node has accepted the watch; errors until then (an unreachable
// cluster within the client's timeout, a bad credential, a compacted start
// revision as *api.CompactedError) are returned directly.
//
// Any node serves watches, followers included. When the node fails or the
// stream breaks, the watch resumes on another node of the ticket from the
// last revision delivered, so nothing is missed or repeated. The channel
// closes after an item with Err set: ctx's error when ctx ends, an
// *api.CompactedError when the consumer fell behind the nodes' history, or
// an *api.Error the cluster refused the watch with.
func (c *Client) Watch(ctx context.Context, prefix []byte, opts WatchOptions) (<-chan WatchEvent, error) {
	if len(prefix) > api.MaxKeySize {
		return nil, api.Errorf(api.CodeInvalidArgument, "watch prefix of %d bytes exceeds the %d-byte key limit", len(prefix), api.MaxKeySize)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 64
	}
	c.mu.Lock()
	first := c.next // the node that answered last
	c.mu.Unlock()
	w := &watcher{c: c, prefix: prefix, prevValue: opts.PrevValue, from: opts.FromRevision, peer: first}
	sctx, cancel := c.withTimeout(ctx)
	st, err := w.open(sctx)
	cancel()
	if err != nil {
		return nil, err
	}
	ch := make(chan WatchEvent, opts.Buffer)
	go w.run(ctx, st, ch)
	return ch, nil
}

// watcher is the state of one watch, owned by its run goroutine (open runs
// before it starts).
type watcher struct {
	c         *Client
	prefix    []byte
	prevValue bool
	peer      int // index of the ticket peer in use

	// from is the first revision not yet fully delivered (0: not yet known);
	// done counts its events already delivered, seen those received on the
	// current stream.
	from       uint64
	done, seen int
}

// open opens a watch stream on some node, rotating through the ticket's
// peers with backoff until ctx ends, and reads its first frame. It returns
// at once on an error the cluster answers with.
func (w *watcher) open(ctx context.Context) (*quic.Stream, error) {
	backoff := 25 * time.Millisecond
	var lastErr error
	for tries := 0; ; tries++ {
		target := w.c.peers[w.peer%len(w.c.peers)]
		tctx, tcancel := context.WithTimeout(ctx, watchDial)
		st, err := w.try(tctx, target)
		tcancel()
		if err == nil {
			w.c.markGood(target)
			return st, nil
		}
		var ae *api.Error
		var ce *api.CompactedError
		if errors.As(err, &ce) || (errors.As(err, &ae) && ae.Code != api.CodeUnavailable) {
			return nil, err
		}
		lastErr = err
		w.c.logger.Debug("client: watch: node failed", "node", target.String(), "err", err)
		w.peer++
		if (tries+1)%len(w.c.peers) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
		}
		if ctx.Err() != nil {
			return nil, api.Errorf(api.CodeUnavailable, "watch: cannot reach the cluster: %v", lastErr)
		}
	}
}

// try opens a watch on one node and reads the confirming progress frame.
func (w *watcher) try(ctx context.Context, target transport.NodeAddr) (*quic.Stream, error) {
	conn, err := w.c.ep.Dial(ctx, target, api.ALPNWatch)
	if err != nil {
		return nil, err
	}
	exp, err := conn.Exporter()
	if err != nil {
		return nil, err
	}
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	from := w.from
	w.seen = 0
	req := &api.WatchRequest{Auth: w.c.proofs.get(exp), Prefix: w.prefix, FromRevision: from, PrevValue: w.prevValue}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0); st.CancelWrite(0) })
	defer stop()
	if err := rpc.WriteFrame(st, req); err != nil {
		abort(st)
		return nil, err
	}
	_ = st.SetReadDeadline(time.Now().Add(watchIdle))
	var f api.WatchFrame
	if err := rpc.ReadFrame(st, &f); err != nil {
		abort(st)
		return nil, err
	}
	if f.Error != nil {
		abort(st)
		return nil, watchError(f.Error, from)
	}
	if len(f.Events) > 0 {
		abort(st)
		return nil, fmt.Errorf("watch: %s sent events before confirming the watch", target)
	}
	w.progress(f.Revision)
	return st, nil
}

func abort(st *quic.Stream) {
	st.CancelRead(0)
	st.CancelWrite(0)
}

// watchError turns an error frame into the client's error values.
func watchError(e *api.WatchError, from uint64) error {
	switch e.Code {
	case api.WatchCodeCompacted:
		return &api.CompactedError{Requested: from, Oldest: e.OldestRevision}
	case api.WatchCodeUnauthorized:
		return &api.Error{Code: api.CodeUnauthorized, Message: e.Message}
	case api.WatchCodeInvalidArgument:
		return &api.Error{Code: api.CodeInvalidArgument, Message: e.Message}
	}
	return &api.Error{Code: api.CodeUnavailable, Message: e.Message}
}

// progress records that every event up to rev has been delivered.
func (w *watcher) progress(rev uint64) {
	if rev+1 > w.from {
		w.from, w.done, w.seen = rev+1, 0, 0
	}
}

// run reads frames and delivers events until ctx ends or a final error,
// reopening the watch on another node after a failure.
func (w *watcher) run(ctx context.Context, st *quic.Stream, ch chan<- WatchEvent) {
	defer close(ch)
	for {
		err := w.read(ctx, st, ch)
		abort(st)
		if ctx.Err() != nil {
			select {
			case ch <- WatchEvent{Err: ctx.Err()}:
			default:
			}
			return
		}
		var ae *api.Error
		var ce *api.CompactedError
		if errors.As(err, &ce) || (errors.As(err, &ae) && ae.Code != api.CodeUnavailable) {
			w.final(ctx, ch, err)
			return
		}
		w.c.logger.Debug("client: watch interrupted; resuming on another node", "from", w.from, "err", err)
		w.peer++
		if st, err = w.open(ctx); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			w.final(ctx, ch, err)
			return
		}
	}
}

func (w *watcher) final(ctx context.Context, ch chan<- WatchEvent, err error) {
	select {
	case ch <- WatchEvent{Err: err}:
	case <-ctx.Done():
	}
}

// read delivers the frames of one stream until it fails.
func (w *watcher) read(ctx context.Context, st *quic.Stream, ch chan<- WatchEvent) error {
	stop := context.AfterFunc(ctx, func() { abort(st) })
	defer stop()
	for {
		_ = st.SetReadDeadline(time.Now().Add(watchIdle))
		var f api.WatchFrame
		if err := rpc.ReadFrame(st, &f); err != nil {
			return err
		}
		if f.Error != nil {
			return watchError(f.Error, w.from)
		}
		for _, e := range f.Events {
			if e.Revision < w.from {
				continue // already delivered
			}
			if e.Revision > w.from {
				w.from, w.done, w.seen = e.Revision, 0, 0
			}
			w.seen++
			if w.seen <= w.done {
				continue // delivered before a resume inside this revision
			}
			select {
			case ch <- WatchEvent{WatchEvent: e}:
			case <-ctx.Done():
				return ctx.Err()
			}
			w.done++
		}
		if !f.Partial {
			w.progress(f.Revision)
		}
	}
}
