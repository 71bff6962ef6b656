package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/internal/auth"
)

// Conn is an authenticated QUIC connection to a peer whose Ed25519 key has
// been verified. It is safe for concurrent use; streams are independent.
type Conn struct {
	qc   *quic.Conn
	peer PublicKey
	alpn string

	faults Faults    // the endpoint's fault injector, nil in production
	self   PublicKey // the endpoint's key, for faults

	exporter struct { // Exporter's result, computed once
		once sync.Once
		b    []byte
		err  error
	}

	idle idlePool // streams kept by ReleaseStream
}

// idlePool holds a connection's idle streams, oldest first.
type idlePool struct {
	mu      sync.Mutex
	streams []idleStream
}

type idleStream struct {
	st    *quic.Stream
	since time.Time
}

const (
	// MaxIdleStreams bounds the streams a connection keeps for reuse; one
	// released beyond it is closed.
	MaxIdleStreams = 256
	// StreamIdleTimeout is how long a released stream stays reusable. A
	// server ending idle streams should wait longer (package rpc waits 30s)
	// so that a stream is rarely taken just as the server ends it.
	StreamIdleTimeout = 10 * time.Second
)

// newConn wraps an established QUIC connection, reading the peer key that
// the TLS verify hooks already checked.
func newConn(qc *quic.Conn) (*Conn, error) {
	st := qc.ConnectionState().TLS
	if len(st.PeerCertificates) == 0 {
		return nil, fmt.Errorf("connection from %s: no peer certificate", qc.RemoteAddr())
	}
	pk, err := certKey(st.PeerCertificates[0])
	if err != nil {
		return nil, fmt.Errorf("connection from %s: %w", qc.RemoteAddr(), err)
	}
	return &Conn{qc: qc, peer: pk, alpn: st.NegotiatedProtocol}, nil
}

// Peer returns the verified Ed25519 key of the remote side.
func (c *Conn) Peer() PublicKey { return c.peer }

// ALPN returns the protocol negotiated for the connection.
func (c *Conn) ALPN() string { return c.alpn }

// Exporter returns auth.ExporterLen bytes of TLS keying material exported
// with label auth.ExporterLabel. Both sides of a connection get the same
// value and no other connection does, which is what auth.Proof binds to.
// It is computed once per connection (a TLS exporter is an HKDF run); the
// caller must not modify the returned bytes.
func (c *Conn) Exporter() ([]byte, error) {
	e := &c.exporter
	e.once.Do(func() {
		st := c.qc.ConnectionState().TLS
		e.b, e.err = st.ExportKeyingMaterial(auth.ExporterLabel, nil, auth.ExporterLen)
		if e.err != nil {
			e.err = fmt.Errorf("export keying material for peer %s: %w", c.peer, e.err)
		}
	})
	return e.b, e.err
}

// OpenStream opens a bidirectional stream, blocking while the peer's stream
// limit is reached, until ctx is done.
func (c *Conn) OpenStream(ctx context.Context) (*quic.Stream, error) {
	if !c.allowOut() {
		return nil, fmt.Errorf("open stream: %w", faultError(c.self, c.peer, c.alpn))
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream to %s (%s): %w", c.peer, c.alpn, err)
	}
	return s, nil
}

// TakeStream returns a stream released by ReleaseStream within
// StreamIdleTimeout, newest first, or nil when there is none (or an injected
// fault blocks traffic to the peer). Request/response protocols reuse streams
// this way instead of opening one per call: opening, tracking and closing a
// QUIC stream was most of a call's allocations.
func (c *Conn) TakeStream() *quic.Stream {
	if !c.allowOut() {
		return nil
	}
	p := &c.idle
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prune(time.Now())
	n := len(p.streams)
	if n == 0 {
		return nil
	}
	st := p.streams[n-1].st
	p.streams[n-1] = idleStream{}
	p.streams = p.streams[:n-1]
	return st
}

// ReleaseStream keeps st, idle between calls, for a later TakeStream. The
// caller must not use st afterwards.
func (c *Conn) ReleaseStream(st *quic.Stream) {
	p := &c.idle
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.prune(now)
	if len(p.streams) >= MaxIdleStreams || !c.alive() {
		closeStream(st)
		return
	}
	p.streams = append(p.streams, idleStream{st: st, since: now})
}

// prune closes and forgets the streams idle for StreamIdleTimeout at now:
// the oldest ones, at the front. The caller holds p.mu.
func (p *idlePool) prune(now time.Time) {
	stale := 0
	for stale < len(p.streams) && now.Sub(p.streams[stale].since) >= StreamIdleTimeout {
		closeStream(p.streams[stale].st)
		stale++
	}
	if stale > 0 {
		n := copy(p.streams, p.streams[stale:])
		clear(p.streams[n:])
		p.streams = p.streams[:n]
	}
}

// closeStream ends an idle stream: the peer sees it end between calls.
func closeStream(st *quic.Stream) {
	st.CancelRead(0)
	_ = st.Close()
}

// AcceptStream waits for the peer to open a bidirectional stream.
func (c *Conn) AcceptStream(ctx context.Context) (*quic.Stream, error) {
	for {
		s, err := c.qc.AcceptStream(ctx)
		if err != nil {
			return nil, fmt.Errorf("accept stream from %s (%s): %w", c.peer, c.alpn, err)
		}
		if c.allowIn() {
			return s, nil
		}
		s.CancelRead(0) // injected fault: the stream is lost
		s.CancelWrite(0)
	}
}

// allowOut and allowIn ask the endpoint's Faults, if any, whether traffic
// to and from the peer may flow now.
func (c *Conn) allowOut() bool { return c.faults == nil || c.faults.Allow(c.self, c.peer, c.alpn) }
func (c *Conn) allowIn() bool  { return c.faults == nil || c.faults.Allow(c.peer, c.self, c.alpn) }

// Close closes the connection, sending the application error code and reason
// to the peer. Closing an already closed connection returns nil.
func (c *Conn) Close(code uint64, reason string) error {
	if err := c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason); err != nil {
		return fmt.Errorf("close connection to %s: %w", c.peer, err)
	}
	return nil
}

// Context is done when the connection is closed, by either side or by an
// idle timeout.
func (c *Conn) Context() context.Context { return c.qc.Context() }

// RemoteAddr returns the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// LocalAddr returns the local UDP address.
func (c *Conn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

func (c *Conn) alive() bool { return c.qc.Context().Err() == nil }
