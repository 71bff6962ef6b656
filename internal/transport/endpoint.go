package transport

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// DefaultBind is the socket address used when Config.Bind is empty.
const DefaultBind = "127.0.0.1:0"

// QUIC settings shared by every connection of an endpoint.
const (
	keepAlivePeriod      = 5 * time.Second
	maxIdleTimeout       = 30 * time.Second
	handshakeIdleTimeout = 5 * time.Second
	maxIncomingStreams   = 1000
	maxIncomingUni       = 100
)

// Config configures an Endpoint.
type Config struct {
	// Identity is the node's key pair. Required.
	Identity Identity
	// Bind is the UDP "host:port" to listen on; port 0 picks a free port.
	// Default DefaultBind. Dial-only endpoints (the CLI) still bind an
	// ephemeral port: the same socket sends and receives for dialed
	// connections.
	Bind string
	// Faults, when set, is consulted on every dial, accepted connection and
	// stream (see Faults). For fault-injection tests only; nil in production.
	Faults Faults
}

// Handler serves one accepted connection. It runs in its own goroutine and
// owns c: the endpoint closes c when the handler returns. ctx is cancelled
// when the endpoint closes; the handler must then return promptly.
type Handler func(ctx context.Context, c *Conn)

// Endpoint is a node's QUIC endpoint: one UDP socket that accepts
// connections for the registered ALPNs and dials other nodes. All methods
// are safe for concurrent use.
type Endpoint struct {
	id     Identity
	cert   tls.Certificate
	logger *slog.Logger
	udp    *net.UDPConn
	bindV6 bool // Bind named an IPv6 address
	tr     *quic.Transport
	qconf  *quic.Config
	faults Faults // nil unless injecting faults

	ctx    context.Context // cancelled by Close; parent of handler contexts
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines started by goFunc

	mu       sync.Mutex // guards the fields below
	handlers map[string]Handler
	serving  bool
	closed   bool
	ln       *quic.Listener
	dialed   map[dialKey]*dialEntry // shared outgoing connections
	accepted map[*Conn]struct{}     // connections owned by running handlers

	closeOnce sync.Once
	closeErr  error
}

type dialKey struct {
	key  PublicKey
	alpn string
}

// dialEntry is an outgoing connection, or a dial of one in progress.
type dialEntry struct {
	done chan struct{} // closed once conn or err is set
	conn *Conn
	err  error
}

// ready returns the entry's connection when its dial succeeded and the
// connection is still alive; finished reports whether the dial is over.
func (ent *dialEntry) ready() (c *Conn, finished bool) {
	select {
	case <-ent.done:
		if ent.err == nil && ent.conn.alive() {
			return ent.conn, true
		}
		return nil, true
	default:
		return nil, false
	}
}

// Listen binds the UDP socket described by cfg and returns an endpoint ready
// to dial. Register handlers with Handle, then call Serve to accept.
func Listen(cfg Config, logger *slog.Logger) (*Endpoint, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Identity.valid(); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	bind := cfg.Bind
	if bind == "" {
		bind = DefaultBind
	}
	laddr, err := net.ResolveUDPAddr("udp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen: resolve bind address %q: %w", bind, err)
	}
	cert, err := selfSignedCert(cfg.Identity)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("listen on udp %s: %w", bind, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		id:     cfg.Identity,
		cert:   cert,
		logger: logger.With("component", "transport"),
		udp:    udp,
		bindV6: laddr.IP != nil && laddr.IP.To4() == nil,
		tr: &quic.Transport{
			Conn:              udp,
			StatelessResetKey: resetKey(cfg.Identity),
		},
		qconf: &quic.Config{
			HandshakeIdleTimeout:  handshakeIdleTimeout,
			MaxIdleTimeout:        maxIdleTimeout,
			KeepAlivePeriod:       keepAlivePeriod,
			MaxIncomingStreams:    maxIncomingStreams,
			MaxIncomingUniStreams: maxIncomingUni,
		},
		faults:   cfg.Faults,
		ctx:      ctx,
		cancel:   cancel,
		handlers: make(map[string]Handler),
		dialed:   make(map[dialKey]*dialEntry),
		accepted: make(map[*Conn]struct{}),
	}
	e.logger.Info("endpoint bound", "node", e.id.Public(), "addr", e.Addr())
	return e, nil
}

// resetKey derives the QUIC stateless reset key from the node's seed, so a
// restarted node can reset connections its previous incarnation held.
func resetKey(id Identity) *quic.StatelessResetKey {
	h := hmac.New(sha256.New, id.Key.Seed())
	h.Write([]byte("aspen/quic-stateless-reset/v1"))
	var k quic.StatelessResetKey
	copy(k[:], h.Sum(nil))
	return &k
}

// Handle registers h for connections negotiating alpn. It must be called
// before Serve; later calls are logged and ignored. Registering the same
// ALPN twice replaces the handler.
func (e *Endpoint) Handle(alpn string, h Handler) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.serving || e.closed {
		e.logger.Error("Handle called after Serve or Close; ignored", "alpn", alpn)
		return
	}
	e.handlers[alpn] = h
}

// Serve starts accepting connections in a goroutine owned by the endpoint.
// Only the ALPNs registered with Handle are offered, so a dialer asking for
// any other protocol fails in the TLS handshake. Calling Serve again, or
// after Close, does nothing.
func (e *Endpoint) Serve() {
	e.mu.Lock()
	if e.serving || e.closed {
		e.mu.Unlock()
		return
	}
	e.serving = true
	alpns := make([]string, 0, len(e.handlers))
	for a := range e.handlers {
		alpns = append(alpns, a)
	}
	slices.Sort(alpns)
	ln, err := e.tr.Listen(serverTLS(e.cert, alpns), e.qconf)
	if err != nil {
		e.mu.Unlock()
		e.logger.Error("cannot start QUIC listener", "err", err)
		return
	}
	e.ln = ln
	e.mu.Unlock()
	e.logger.Info("serving", "addr", e.Addr(), "alpns", alpns)
	e.goFunc(func() { e.acceptLoop(ln) })
}

func (e *Endpoint) acceptLoop(ln *quic.Listener) {
	for {
		qc, err := ln.Accept(e.ctx)
		if err != nil {
			if e.ctx.Err() == nil && !errors.Is(err, quic.ErrServerClosed) {
				e.logger.Error("accept loop stopped", "err", err)
			}
			return
		}
		c, err := newConn(qc)
		if err != nil {
			e.logger.Warn("rejecting connection", "remote", qc.RemoteAddr(), "err", err)
			_ = qc.CloseWithError(quic.ApplicationErrorCode(0), "bad peer certificate")
			continue
		}
		e.withFaults(c)
		if e.faults != nil && !e.faults.Allow(c.peer, c.self, c.alpn) {
			_ = c.Close(0, "injected fault")
			continue
		}
		e.mu.Lock()
		h := e.handlers[c.alpn]
		e.mu.Unlock()
		if h == nil { // cannot happen: TLS only negotiates registered ALPNs
			_ = c.Close(0, "no handler")
			continue
		}
		e.logger.Debug("accepted connection", "peer", c.peer, "alpn", c.alpn, "remote", c.RemoteAddr())
		if !e.track(c) {
			_ = c.Close(0, "endpoint closing")
			return
		}
		started := e.goFunc(func() {
			defer e.untrack(c)
			h(e.ctx, c)
		})
		if !started {
			e.untrack(c)
		}
	}
}

// track records an accepted connection so Close can close it.
func (e *Endpoint) track(c *Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.accepted[c] = struct{}{}
	return true
}

// untrack forgets an accepted connection and closes it; the handler is done.
func (e *Endpoint) untrack(c *Conn) {
	e.mu.Lock()
	delete(e.accepted, c)
	e.mu.Unlock()
	_ = c.Close(0, "")
}

// goFunc runs f in a goroutine that Close waits for. It refuses, returning
// false, once Close has started.
func (e *Endpoint) goFunc(f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
	return true
}

// Open returns the live connection Dial made to to for alpn, or nil when
// there is none yet (or an injected fault blocks the peer): the cheap path
// of Dial, which callers use before deriving a context to bound a new dial.
func (e *Endpoint) Open(to NodeAddr, alpn string) *Conn {
	if e.faults != nil && !e.faults.Allow(e.id.Public(), to.Key, alpn) {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ent := e.dialed[dialKey{key: to.Key, alpn: alpn}]; ent != nil {
		c, _ := ent.ready()
		return c
	}
	return nil
}

// Dial returns a connection to the node to.Key speaking alpn, trying
// to.Addrs in order. The handshake fails unless the peer proves it holds
// to.Key. Connections are shared: a live connection for the same (key,
// alpn) is reused, a closed one is replaced, and concurrent callers wait for
// a single dial. The endpoint owns dialed connections and closes them in
// Close; callers should only Close one to discard it after a protocol error.
func (e *Endpoint) Dial(ctx context.Context, to NodeAddr, alpn string) (*Conn, error) {
	if err := to.Validate(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", alpn, err)
	}
	if e.faults != nil && !e.faults.Allow(e.id.Public(), to.Key, alpn) {
		return nil, fmt.Errorf("dial: %w", faultError(e.id.Public(), to.Key, alpn))
	}
	k := dialKey{key: to.Key, alpn: alpn}
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, fmt.Errorf("dial %s %s: endpoint: %w", to, alpn, net.ErrClosed)
		}
		if ent := e.dialed[k]; ent != nil {
			c, finished := ent.ready()
			switch {
			case c != nil:
				e.mu.Unlock()
				return c, nil
			case finished:
				delete(e.dialed, k) // failed or closed: dial again below
			default:
				e.mu.Unlock()
				select {
				case <-ent.done:
					continue
				case <-ctx.Done():
					return nil, fmt.Errorf("dial %s %s: %w", to, alpn, ctx.Err())
				}
			}
		}
		ent := &dialEntry{done: make(chan struct{})}
		e.dialed[k] = ent
		e.mu.Unlock()

		c, err := e.dial(ctx, to, alpn)

		e.mu.Lock()
		ent.conn, ent.err = c, err
		close(ent.done)
		if err != nil && e.dialed[k] == ent {
			delete(e.dialed, k)
		}
		closed := e.closed
		e.mu.Unlock()
		if err == nil && closed { // Close ran while dialing and missed c
			_ = c.Close(0, "endpoint closing")
			return nil, fmt.Errorf("dial %s %s: endpoint: %w", to, alpn, net.ErrClosed)
		}
		return c, err
	}
}

// dial makes a new connection, trying each address of to in turn.
func (e *Endpoint) dial(ctx context.Context, to NodeAddr, alpn string) (*Conn, error) {
	tlsConf := clientTLS(e.cert, to.Key, alpn)
	var errs []error
	for _, hp := range to.Addrs {
		ips, err := e.resolve(ctx, hp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ap := range ips {
			qc, err := e.tr.Dial(ctx, net.UDPAddrFromAddrPort(ap), tlsConf, e.qconf)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ap, err))
				if ctx.Err() != nil {
					return nil, fmt.Errorf("dial %s %s: %w", to, alpn, errors.Join(errs...))
				}
				continue
			}
			c, err := newConn(qc)
			if err != nil {
				_ = qc.CloseWithError(0, "bad peer certificate")
				errs = append(errs, err)
				continue
			}
			e.withFaults(c)
			e.logger.Debug("dialed", "peer", c.peer, "alpn", alpn, "remote", ap)
			return c, nil
		}
	}
	return nil, fmt.Errorf("dial %s %s: %w", to, alpn, errors.Join(errs...))
}

// withFaults gives c this endpoint's fault injector and key.
func (e *Endpoint) withFaults(c *Conn) {
	c.faults, c.self = e.faults, e.id.Public()
}

// resolve turns "host:port" into socket addresses usable from our socket,
// an IPv4 socket only reaching IPv4 addresses.
func (e *Endpoint) resolve(ctx context.Context, hp string) ([]netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(hp)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", hp, err)
	}
	port, err := net.DefaultResolver.LookupPort(ctx, "udp", portText)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", hp, err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("resolve %q: %w", host, err)
	}
	local := e.Addr()
	v4Only := local.IP.To4() != nil
	var out []netip.AddrPort
	for _, ip := range ips {
		ip = ip.Unmap()
		if v4Only && !ip.Is4() {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, uint16(port)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("address %q: no address reachable from local socket %s", hp, local)
	}
	return out, nil
}

// Addr returns the bound UDP address, with port 0 resolved.
func (e *Endpoint) Addr() *net.UDPAddr {
	return e.udp.LocalAddr().(*net.UDPAddr)
}

// NodeAddr returns this endpoint's key and bound address. When bound to an
// unspecified address (0.0.0.0 or ::) the host is replaced by loopback;
// callers advertising the node to others should substitute a routable
// address.
func (e *Endpoint) NodeAddr() NodeAddr {
	a := e.Addr()
	ip := a.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
		if e.bindV6 {
			ip = net.IPv6loopback
		}
	}
	hp := net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
	return NodeAddr{Key: e.id.Public(), Addrs: []string{hp}}
}

// Identity returns the endpoint's identity.
func (e *Endpoint) Identity() Identity { return e.id }

// Close stops accepting, cancels handler contexts, closes every connection,
// waits for the endpoint's goroutines and releases the socket. It is
// idempotent; later calls return the first call's result.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.close() })
	return e.closeErr
}

func (e *Endpoint) close() error {
	e.mu.Lock()
	e.closed = true
	ln := e.ln
	var conns []*Conn
	for _, ent := range e.dialed {
		select {
		case <-ent.done:
			if ent.conn != nil {
				conns = append(conns, ent.conn)
			}
		default: // in-flight dials are aborted by closing the transport
		}
	}
	e.dialed = make(map[dialKey]*dialEntry)
	for c := range e.accepted {
		conns = append(conns, c)
	}
	e.mu.Unlock()

	e.cancel()
	var errs []error
	if ln != nil {
		if err := ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close listener: %w", err))
		}
	}
	for _, c := range conns {
		_ = c.Close(0, "endpoint closing")
	}
	if err := e.tr.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close quic transport: %w", err))
	}
	e.wg.Wait()
	if err := e.udp.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close udp socket: %w", err))
	}
	e.logger.Info("endpoint closed", "node", e.id.Public())
	return errors.Join(errs...)
}
