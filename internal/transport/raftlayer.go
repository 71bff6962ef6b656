package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/internal/auth"
)

// preambleTimeout bounds how long an accepted stream may take to deliver its
// proof before it is dropped.
const preambleTimeout = 10 * time.Second

// streamRejected is the QUIC stream error code sent when an accepted raft
// stream fails authentication or membership.
const streamRejected quic.StreamErrorCode = 0x1

// connRejected is the QUIC application error code sent when a raft
// connection comes from a peer that is not a member.
const connRejected = 0x1

var _ raft.StreamLayer = (*StreamLayer)(nil)

// StreamLayer carries hashicorp/raft's network transport over QUIC: each raft
// connection is one bidirectional stream, and streams to the same node share
// one QUIC connection. A raft.ServerAddress is the NodeAddr text form
// "hexkey@host:port[,...]".
//
// Every stream starts with a ProofLen-byte preamble,
// auth.Proof(nodeSecret, exporter), which the acceptor checks before handing
// the stream to raft; the acceptor also asks allow whether the peer's key is
// a member. So only nodes knowing the cluster cookie (and, once membership is
// known, only members) can reach raft.
//
// Accept, Dial, Close and Addr are safe for concurrent use. allow is called
// from connection goroutines, concurrently, and must not block.
type StreamLayer struct {
	e      *Endpoint
	alpn   string
	secret []byte
	allow  func(PublicKey) bool
	logger *slog.Logger

	accept chan net.Conn // verified streams, handed to Accept

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu   sync.Mutex
	live map[*streamConn]struct{} // streams handed out, aborted by Close
}

// track records a stream handed out; it reports false (and aborts the
// stream) once the layer is closed.
func (l *StreamLayer) track(sc *streamConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		sc.abort()
		return false
	}
	l.live[sc] = struct{}{}
	sc.layer = l
	return true
}

func (l *StreamLayer) untrack(sc *streamConn) {
	l.mu.Lock()
	delete(l.live, sc)
	l.mu.Unlock()
}

// NewStreamLayer serves ALPN alpn on e for raft. It registers its handler
// with e.Handle, so it must be called before e.Serve. nodeSecret is
// auth.Keys.Node; allow is the membership check (nil allows every peer that
// proves the secret). The layer does not own e: closing the layer stops
// Accept and Dial, closing e tears down the streams.
func NewStreamLayer(e *Endpoint, alpn string, nodeSecret []byte, allow func(PublicKey) bool, logger *slog.Logger) *StreamLayer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if allow == nil {
		allow = func(PublicKey) bool { return true }
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &StreamLayer{
		e:      e,
		alpn:   alpn,
		secret: append([]byte(nil), nodeSecret...),
		allow:  allow,
		logger: logger.With("component", "raftlayer", "alpn", alpn),
		accept: make(chan net.Conn),
		ctx:    ctx,
		cancel: cancel,
		live:   make(map[*streamConn]struct{}),
	}
	e.Handle(alpn, l.serve)
	return l
}

// serve accepts the streams of one incoming connection until it closes, the
// endpoint closes or the layer closes.
func (l *StreamLayer) serve(ctx context.Context, c *Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.ctx, cancel)()

	if !l.allow(c.Peer()) {
		l.logger.Warn("rejecting raft connection from non-member", "peer", c.Peer(), "remote", c.RemoteAddr())
		_ = c.Close(connRejected, "not a cluster member")
		return
	}
	exporter, err := c.Exporter()
	if err != nil {
		l.logger.Warn("rejecting raft connection", "peer", c.Peer(), "err", err)
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() { l.admit(ctx, c, s, exporter) })
	}
}

// admit checks a stream's preamble and the peer's membership and hands the
// stream to Accept, or resets it.
func (l *StreamLayer) admit(ctx context.Context, c *Conn, s *quic.Stream, exporter []byte) {
	reject := func(msg string, args ...any) {
		l.logger.Warn(msg, append([]any{"peer", c.Peer(), "remote", c.RemoteAddr()}, args...)...)
		s.CancelRead(streamRejected)
		s.CancelWrite(streamRejected)
	}
	proof := make([]byte, auth.ProofLen)
	_ = s.SetReadDeadline(time.Now().Add(preambleTimeout))
	if _, err := io.ReadFull(s, proof); err != nil {
		reject("rejecting raft stream: reading proof", "err", err)
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	if !auth.VerifyProof(l.secret, exporter, proof) {
		reject("rejecting raft stream: bad node proof (cookie mismatch?)")
		return
	}
	if !l.allow(c.Peer()) {
		reject("rejecting raft stream from non-member")
		return
	}
	nc := &streamConn{s: s, c: c}
	if !l.track(nc) {
		return
	}
	select {
	case l.accept <- nc:
	case <-ctx.Done():
		_ = nc.Close()
	case <-c.Context().Done():
		_ = nc.Close()
	}
}

// Accept waits for the next authenticated raft stream. After Close it
// returns an error wrapping net.ErrClosed.
func (l *StreamLayer) Accept() (net.Conn, error) {
	select {
	case nc := <-l.accept:
		return nc, nil
	case <-l.ctx.Done():
		return nil, fmt.Errorf("raft stream layer %s: accept: %w", l.alpn, net.ErrClosed)
	}
}

// Close stops the layer: Accept returns, new Dials fail, incoming raft
// connections are dropped and streams already handed out are aborted, so
// no raft goroutine stays blocked on a peer that died. Close is idempotent.
func (l *StreamLayer) Close() error {
	l.mu.Lock()
	l.cancel()
	live := l.live
	l.live = map[*streamConn]struct{}{}
	l.mu.Unlock()
	for sc := range live {
		sc.abort()
	}
	return nil
}

// Addr returns the endpoint's NodeAddr as a net.Addr; its String is the
// raft.ServerAddress other nodes dial.
func (l *StreamLayer) Addr() net.Addr { return layerAddr{l.e.NodeAddr()} }

// Dial opens an authenticated raft stream to address, a NodeAddr in text
// form, reusing the endpoint's connection to that node when there is one.
// timeout bounds connecting and opening the stream; zero means no bound.
func (l *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	to, err := ParseNodeAddr(string(address))
	if err != nil {
		return nil, fmt.Errorf("raft dial: %w", err)
	}
	ctx := l.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// A cached connection can die between Dial and OpenStream; then one
	// more attempt gets a fresh connection.
	var lastErr error
	for range 2 {
		nc, err := l.dialOnce(ctx, to)
		if err == nil {
			return nc, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("raft dial %s: %w", to.Key, lastErr)
}

func (l *StreamLayer) dialOnce(ctx context.Context, to NodeAddr) (net.Conn, error) {
	c, err := l.e.Dial(ctx, to, l.alpn)
	if err != nil {
		return nil, err
	}
	s, err := c.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	exporter, err := c.Exporter()
	if err != nil {
		s.CancelRead(0)
		s.CancelWrite(0)
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = s.SetWriteDeadline(deadline)
	}
	if _, err := s.Write(auth.Proof(l.secret, exporter)); err != nil {
		s.CancelRead(0)
		s.CancelWrite(0)
		return nil, fmt.Errorf("write proof: %w", err)
	}
	_ = s.SetWriteDeadline(time.Time{})
	sc := &streamConn{s: s, c: c}
	if !l.track(sc) {
		return nil, fmt.Errorf("raft stream layer %s: %w", l.alpn, net.ErrClosed)
	}
	return sc, nil
}

// layerAddr is a NodeAddr as a net.Addr.
type layerAddr struct{ a NodeAddr }

func (a layerAddr) Network() string { return "aspen" }
func (a layerAddr) String() string  { return a.a.String() }

// streamConn is a QUIC stream as a net.Conn.
type streamConn struct {
	s         *quic.Stream
	c         *Conn
	layer     *StreamLayer // set by track
	closeOnce sync.Once
	closeErr  error
}

// abort resets both directions of the stream.
func (sc *streamConn) abort() {
	sc.s.CancelRead(0)
	sc.s.CancelWrite(0)
}

var _ net.Conn = (*streamConn)(nil)

func (sc *streamConn) Read(b []byte) (int, error) {
	n, err := sc.s.Read(b)
	if n > 0 && !sc.c.allowIn() { // injected fault: the message is lost, and the stream with it
		sc.abort()
		return 0, faultError(sc.c.peer, sc.c.self, sc.c.alpn)
	}
	return n, err
}

func (sc *streamConn) Write(b []byte) (int, error) {
	if !sc.c.allowOut() {
		sc.abort()
		return 0, faultError(sc.c.self, sc.c.peer, sc.c.alpn)
	}
	return sc.s.Write(b)
}

// Close finishes the send side and stops reading; the peer reads EOF after
// the data already written.
func (sc *streamConn) Close() error {
	sc.closeOnce.Do(func() {
		if sc.layer != nil {
			sc.layer.untrack(sc)
		}
		err := sc.s.Close()
		sc.s.CancelRead(0)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			sc.closeErr = fmt.Errorf("close raft stream to %s: %w", sc.c.Peer(), err)
		}
	})
	return sc.closeErr
}

func (sc *streamConn) LocalAddr() net.Addr                { return sc.c.LocalAddr() }
func (sc *streamConn) RemoteAddr() net.Addr               { return sc.c.RemoteAddr() }
func (sc *streamConn) SetDeadline(t time.Time) error      { return sc.s.SetDeadline(t) }
func (sc *streamConn) SetReadDeadline(t time.Time) error  { return sc.s.SetReadDeadline(t) }
func (sc *streamConn) SetWriteDeadline(t time.Time) error { return sc.s.SetWriteDeadline(t) }
