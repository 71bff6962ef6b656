package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// ALPN is the protocol of client calls.
const ALPN = "aspen/client/1"

// Client calls operations on a cluster. Create it with New.
type Client struct {
	cfg    Config
	ep     *transport.Endpoint
	logger *slog.Logger

	proofs proofCache

	mu     sync.Mutex
	peers  []transport.NodeAddr // from the ticket, in order
	next   int                  // index of the peer to try first
	leader *transport.NodeAddr  // last leader hint, tried first when set
}

// New parses the ticket and prepares a client; connections are made lazily.
func New(cfg Config) (*Client, error) {
	if cfg.Ticket == "" {
		return nil, errors.New("client: a cluster ticket is required")
	}
	tk, err := ticket.Parse(cfg.Ticket)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	id, err := transport.GenerateIdentity()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	ep, err := transport.Listen(transport.Config{Identity: id, Bind: ":0"}, logger)
	if err != nil {
		return nil, fmt.Errorf("client: opening QUIC endpoint: %w", err)
	}
	c := &Client{cfg: cfg, ep: ep, logger: logger, proofs: proofCache{cred: tk.Credential}}
	for _, p := range tk.Peers {
		c.peers = append(c.peers, p.NodeAddr())
	}
	return c, nil
}

// Close closes the client's connections.
func (c *Client) Close() error { return c.ep.Close() }

// readOnly operations may be retried on another node after any failure;
// writes are retried only when they certainly did not reach a node.
var readOnly = map[string]bool{
	api.OpKVGet: true, api.OpKVScan: true, api.OpKVBatchRead: true,
	api.OpClusterHealth: true, api.OpClusterStatus: true, api.OpClusterMetrics: true,
	api.OpClusterTicket: true, api.OpClusterPrometheus: true,
	api.OpCounterGet: true, api.OpSignedCounterGet: true, api.OpSequenceCurrent: true,
	api.OpSemaphoreStatus: true, api.OpRateLimitAvailable: true,
	api.OpBlobHas: true, api.OpBlobList: true, api.OpBlobStatus: true, api.OpBlobTicket: true,
	api.OpBarrierStatus: true, api.OpServiceGet: true, api.OpServiceList: true, api.OpServiceDiscover: true,
	api.OpLeaseTTL: true, api.OpLeaseList: true, api.OpLockStatus: true,
	api.OpWorkerStatus: true, api.OpWorkerTasks: true,
}

func call[Resp any](ctx context.Context, c *Client, op string, req any) (*Resp, error) {
	out := new(Resp)
	if err := c.Call(ctx, op, req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Call invokes any operation by name with CBOR-encodable request and
// response values; the typed methods are built on it.
func (c *Client) Call(ctx context.Context, op string, req, resp any) error {
	body, err := rpc.MarshalBuffer(req)
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", op, err)
	}
	r, err := c.do(ctx, op, body.Bytes())
	rpc.ReleaseBuffer(body)
	if err != nil {
		return err
	}
	if resp != nil && len(r.Body) > 0 {
		if err := rpc.Unmarshal(r.Body, resp); err != nil {
			return fmt.Errorf("decoding %s response: %w", op, err)
		}
	}
	return nil
}

// do sends one call, rotating through nodes and following leader hints until
// it gets an answer or the deadline passes.
//
// A call without a context deadline ends after Config.Timeout through a
// deadline passed down (rpc.CallBy), not a context with a timer per call:
// those were 8% of the throughput of a 1-node put run at 256 clients.
func (c *Client) do(ctx context.Context, op string, body []byte) (*rpc.Response, error) {
	deadline, own := ctx.Deadline()
	callDeadline := time.Time{} // ctx's own deadline ends the call already
	if !own {
		deadline = time.Now().Add(c.cfg.Timeout)
		callDeadline = deadline
	}
	var resp *rpc.Response
	err := c.attempt(ctx, deadline, op, body, func(ctx context.Context, conn *transport.Conn, req *rpc.Request) error {
		r, err := rpc.CallBy(ctx, conn, req, callDeadline)
		if err != nil {
			return err
		}
		if r.Error != nil {
			return r.Error
		}
		resp = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// callStream is do for streaming operations (not retried once bytes flow).
// The returned reader ends the call's deadline when closed.
func (c *Client) callStream(ctx context.Context, op string, req any) (io.ReadCloser, error) {
	body, err := rpc.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding %s request: %w", op, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	deadline, _ := ctx.Deadline()
	var rc io.ReadCloser
	err = c.attempt(ctx, deadline, op, body, func(ctx context.Context, conn *transport.Conn, req *rpc.Request) error {
		r, body, err := rpc.CallStream(ctx, conn, req)
		if err != nil {
			return err
		}
		if r.Error != nil {
			return r.Error
		}
		rc = body
		return nil
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelOnClose{ReadCloser: rc, cancel: cancel}, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *cancelOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

type sendFunc func(ctx context.Context, conn *transport.Conn, req *rpc.Request) error

// attempt runs send against nodes until one answers, ctx ends or deadline
// passes. A server error (*api.Error) is an answer, except NOT_LEADER (follow
// the hint or try the next node) and, for reads, UNAVAILABLE. A transport
// failure moves to the next node, but only reads are resent after the
// request may have left.
func (c *Client) attempt(ctx context.Context, deadline time.Time, op string, body []byte, send sendFunc) error {
	expired := func() bool { return ctx.Err() != nil || !time.Now().Before(deadline) }
	backoff := 25 * time.Millisecond
	var lastErr error
	hops := 0 // consecutive leader hints followed without backing off
	for tries := 0; ; tries++ {
		target, fromHint := c.target()
		conn, err := c.dial(ctx, deadline, target)
		sent := false
		if err == nil {
			var exp []byte
			if exp, err = conn.Exporter(); err == nil {
				sent = true
				err = send(ctx, conn, &rpc.Request{Op: op, Auth: c.proofs.get(exp), Body: body})
			}
		}
		if err == nil {
			c.markGood(target)
			return nil
		}
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == api.CodeNotLeader:
			lastErr = ae
			if c.setLeaderHint(ae.Leader, target) && hops < 3 {
				hops++
				continue // go straight to the hinted leader
			}
			hops = 0
		case errors.As(err, &ae) && ae.Code == api.CodeUnavailable && readOnly[op]:
			lastErr = ae
		case errors.As(err, &ae):
			return ae
		case expired():
			return deadlineError(op, lastErr)
		case sent && !readOnly[op]:
			return api.Errorf(api.CodeUnavailable, "%s to %s: %v (the outcome is unknown: the write may or may not have been applied)", op, target, err)
		default:
			lastErr = fmt.Errorf("%s: %w", target, err)
			c.logger.Debug("client: node unreachable", "node", target.String(), "op", op, "err", err)
			if fromHint {
				c.clearLeaderHint()
			}
		}
		c.advance()
		if (tries+1)%len(c.peers) == 0 || fromHint {
			select {
			case <-ctx.Done():
				return deadlineError(op, lastErr)
			case <-time.After(min(backoff, time.Until(deadline))):
			}
			backoff = min(backoff*2, time.Second)
		}
		if expired() {
			return deadlineError(op, lastErr)
		}
	}
}

// dial returns the connection to target, made within deadline when it is
// not open yet.
func (c *Client) dial(ctx context.Context, deadline time.Time, target transport.NodeAddr) (*transport.Conn, error) {
	if conn := c.ep.Open(target, ALPN); conn != nil {
		return conn, nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return c.ep.Dial(ctx, target, ALPN)
}

// proofCache remembers the credential proof of each connection (keyed by
// its TLS exporter), so a request does not compute an HMAC.
type proofCache struct {
	cred []byte
	mu   sync.RWMutex
	m    map[string][]byte
}

// maxCachedProofs bounds the cache; it starts over when full (connections
// are few and long-lived).
const maxCachedProofs = 64

func (p *proofCache) get(exporter []byte) []byte {
	p.mu.RLock()
	proof := p.m[string(exporter)]
	p.mu.RUnlock()
	if proof != nil {
		return proof
	}
	proof = auth.Proof(p.cred, exporter)
	p.mu.Lock()
	if p.m == nil || len(p.m) >= maxCachedProofs {
		p.m = make(map[string][]byte)
	}
	p.m[string(exporter)] = proof
	p.mu.Unlock()
	return proof
}

func deadlineError(op string, last error) error {
	if last == nil {
		return api.Errorf(api.CodeUnavailable, "%s: deadline exceeded before any node answered", op)
	}
	var ae *api.Error
	if errors.As(last, &ae) {
		return ae
	}
	return api.Errorf(api.CodeUnavailable, "%s: cannot reach the cluster: %v", op, last)
}

// target returns the node to try now: the leader hint if any, else the
// current ticket peer.
func (c *Client) target() (transport.NodeAddr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != nil {
		return *c.leader, true
	}
	return c.peers[c.next%len(c.peers)], false
}

func (c *Client) advance() {
	c.mu.Lock()
	c.next = (c.next + 1) % len(c.peers)
	c.mu.Unlock()
}

func (c *Client) markGood(a transport.NodeAddr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.peers {
		if p.Key == a.Key {
			c.next = i
		}
	}
}

// setLeaderHint records a NOT_LEADER hint; it reports whether the hint names
// a node other than the one that answered.
func (c *Client) setLeaderHint(hint string, from transport.NodeAddr) bool {
	if hint == "" {
		c.clearLeaderHint()
		return false
	}
	a, err := transport.ParseNodeAddr(hint)
	if err != nil || a.Key == from.Key {
		c.clearLeaderHint()
		return false
	}
	c.mu.Lock()
	c.leader = &a
	c.mu.Unlock()
	return true
}

func (c *Client) clearLeaderHint() {
	c.mu.Lock()
	c.leader = nil
	c.mu.Unlock()
}
