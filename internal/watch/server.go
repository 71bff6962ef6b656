// Package watch serves change streams of the key/value store over the
// aspen/watch/1 protocol (api.ALPNWatch): a client names a key prefix and a
// start revision, and the server streams every change to those keys, in
// revision order, read from the store's on-disk history.
//
// # Protocol
//
// One watch is one bidirectional QUIC stream. The client writes one
// api.WatchRequest frame carrying a proof of the cluster's client credential
// bound to the connection; the server answers with api.WatchFrame frames: a
// first progress frame confirming the start revision, then event frames
// (whole revisions unless marked partial), keepalive progress frames while
// nothing changes, and possibly one error frame (COMPACTED with the oldest
// available revision, UNAUTHORIZED, INVALID_ARGUMENT, UNAVAILABLE) after
// which it ends the stream.
//
// # Memory
//
// Each watch holds a cursor (the next revision) and reads the history in
// bounded batches; it waits on the store's applied index for more. Nothing is
// queued per watcher: a consumer that reads slowly only holds back its own
// stream (QUIC flow control blocks the server's writes), lags behind, and
// gets COMPACTED once the history's compaction passes its cursor.
//
// Every replica records the same history, so a watch can be served by any
// node, followers included, and resumed on another one.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/kv"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// Store is the part of kv.Store a watch server reads. All methods are called
// from watch goroutines, concurrently with applies.
type Store interface {
	Events(prefix []byte, fromRevision uint64, limit int) ([]kv.Event, uint64, error)
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

var _ Store = (*kv.Store)(nil)

// Conn is the part of a transport connection the server uses.
type Conn interface {
	AcceptStream(ctx context.Context) (*quic.Stream, error)
	Exporter() ([]byte, error)
}

const (
	// DefaultKeepalive is how often an idle watch gets a progress frame.
	DefaultKeepalive = 2 * time.Second
	// readTimeout bounds the wait for a watch request.
	readTimeout = 10 * time.Second
	// batchEvents is how many events one history read returns (whole
	// revisions may make it more).
	batchEvents = 1000
	// frameBudget is the approximate payload size at which a frame is sent
	// and a new one started, well under rpc.MaxFrameSize.
	frameBudget = 1 << 20
	// eventOverhead approximates the CBOR bytes of an event beside its key
	// and values.
	eventOverhead = 64
)

// Server serves watches on accepted connections. Set its fields before the
// first ServeConn; a Server is safe for concurrent use.
type Server struct {
	Store Store
	// Credential is the cluster's client credential; each watch request
	// must carry auth.Proof(Credential, connection exporter).
	Credential []byte
	// Keepalive is the interval of progress frames on an idle watch
	// (default DefaultKeepalive).
	Keepalive time.Duration
	Logger    *slog.Logger
}

// ServeConn accepts streams on c until it closes or ctx ends; each stream is
// one watch served in its own goroutine. It returns when all of them have
// finished.
func (s *Server) ServeConn(ctx context.Context, c Conn) {
	var wg sync.WaitGroup
	// every request carries its own proof (see auth.ConnVerifier)
	verify := auth.NewConnVerifier(s.Credential, c.Exporter).Verify
	defer wg.Wait()
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveStream(ctx, st, verify)
		}()
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) serveStream(ctx context.Context, st *quic.Stream, verify func([]byte) bool) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(readTimeout))
	var req api.WatchRequest
	if err := rpc.ReadFrame(st, &req); err != nil {
		st.CancelRead(0)
		s.fail(st, api.WatchCodeInvalidArgument, fmt.Sprintf("bad watch request: %v", err), 0)
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	if !verify(req.Auth) {
		st.CancelRead(0)
		s.fail(st, api.WatchCodeUnauthorized, "missing or invalid cluster credential: use a ticket of this cluster", 0)
		return
	}
	if len(req.Prefix) > api.MaxKeySize {
		st.CancelRead(0)
		s.fail(st, api.WatchCodeInvalidArgument, fmt.Sprintf("prefix of %d bytes exceeds the %d-byte key limit", len(req.Prefix), api.MaxKeySize), 0)
		return
	}
	// The client ends the watch by resetting the stream: the read side
	// fails (a clean end of its write side is not a cancellation), and the
	// stream's context ends once the client stops reading.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(st.Context(), cancel)()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var b [1]byte
		for {
			if _, err := st.Read(b[:]); err != nil {
				if !errors.Is(err, io.EOF) {
					cancel()
				}
				return
			}
		}
	}()
	defer func() {
		st.CancelRead(0)
		<-readerDone
	}()
	stop := context.AfterFunc(ctx, func() { st.CancelWrite(0) })
	defer stop()

	err := s.stream(ctx, st, &req)
	var ce *kv.CompactedError
	switch {
	case err == nil, ctx.Err() != nil:
	case errors.As(err, &ce):
		s.fail(st, api.WatchCodeCompacted, ce.Error(), ce.Oldest)
	case errors.Is(err, kv.ErrClosed):
		s.fail(st, api.WatchCodeUnavailable, "the node is shutting down: resume on another node", 0)
	case errors.Is(err, errWrite):
		s.logger().Debug("watch: client gone", "err", err)
	default:
		s.logger().Warn("watch failed", "prefix", req.Prefix, "err", err)
		s.fail(st, api.WatchCodeUnavailable, err.Error(), 0)
	}
}

var errWrite = errors.New("watch: write to client")

// stream sends the watch's frames until ctx ends or an error.
func (s *Server) stream(ctx context.Context, st *quic.Stream, req *api.WatchRequest) error {
	keepalive := s.Keepalive
	if keepalive <= 0 {
		keepalive = DefaultKeepalive
	}
	from := req.FromRevision
	if from == 0 {
		from = s.Store.AppliedIndex() + 1
	}
	// the first read also checks that from is not compacted
	evs, next, err := s.Store.Events(req.Prefix, from, batchEvents)
	if err != nil {
		return err
	}
	if err := write(st, &api.WatchFrame{Revision: from - 1}); err != nil {
		return err
	}
	for {
		if len(evs) > 0 {
			if err := s.sendEvents(st, evs, next-1, req.PrevValue); err != nil {
				return err
			}
		}
		if len(evs) == 0 && next > s.Store.AppliedIndex() {
			// caught up: wait for the next apply or send a keepalive
			wctx, wcancel := context.WithTimeout(ctx, keepalive)
			err := s.Store.WaitApplied(wctx, next)
			wcancel()
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, context.DeadlineExceeded):
				if err := write(st, &api.WatchFrame{Revision: next - 1}); err != nil {
					return err
				}
				continue
			case err != nil:
				return err
			}
		} else if len(evs) == 0 {
			// a scan budget ran out in a stretch of other keys: report progress
			if err := write(st, &api.WatchFrame{Revision: next - 1}); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		from = next
		if evs, next, err = s.Store.Events(req.Prefix, from, batchEvents); err != nil {
			return err
		}
	}
}

// sendEvents sends evs (whole revisions) in frames of about frameBudget
// bytes; upTo is the revision fully delivered after the last frame.
func (s *Server) sendEvents(st *quic.Stream, evs []kv.Event, upTo uint64, prev bool) error {
	frame := &api.WatchFrame{}
	size := 0
	for i := range evs {
		e := &evs[i]
		w := api.WatchEvent{Type: api.WatchPut, Key: e.Key, Value: e.Value, Revision: e.Revision}
		if e.Kind == kv.EventDelete {
			w.Type, w.Value = api.WatchDelete, nil
		}
		if prev && e.HasPrev {
			w.PrevValue, w.HasPrevValue = e.PrevValue, true
		}
		n := eventOverhead + len(w.Key) + len(w.Value) + len(w.PrevValue)
		if size > 0 && size+n > frameBudget {
			last := frame.Events[len(frame.Events)-1].Revision
			if last == e.Revision {
				frame.Partial = true
			} else {
				frame.Revision = last
			}
			if err := write(st, frame); err != nil {
				return err
			}
			frame, size = &api.WatchFrame{}, 0
		}
		frame.Events = append(frame.Events, w)
		size += n
	}
	frame.Revision = upTo
	return write(st, frame)
}

func write(st *quic.Stream, f *api.WatchFrame) error {
	if err := rpc.WriteFrame(st, f); err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// fail sends an error frame; the caller then ends the stream.
func (s *Server) fail(st *quic.Stream, code, msg string, oldest uint64) {
	_ = st.SetWriteDeadline(time.Now().Add(readTimeout))
	if err := rpc.WriteFrame(st, &api.WatchFrame{Error: &api.WatchError{Code: code, Message: msg, OldestRevision: oldest}}); err != nil {
		s.logger().Debug("watch: writing error frame", "code", code, "err", err)
	}
}
