// Package node is the composition root of an Aspen node: it builds the QUIC
// endpoint, the key/value state machine, Raft, the operation registry, the
// RPC server and the optional HTTP listener in dependency order, and closes
// them in reverse.
//
// See DESIGN.md in this directory for the request path.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/consensus"
	"github.com/aspen-dev/aspen/internal/kv"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Protocols served on the node's endpoint.
const (
	ALPNClient = "aspen/client/1"
	ALPNRaft   = "aspen/raft/1"
)

// Files in the data directory.
const (
	keyFile    = "node.key"
	stateFile  = "state.db"
	raftDir    = "raft"
	TicketFile = "cluster-ticket.txt"
)

// Node is a running Aspen node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	keys    auth.Keys
	ep      *transport.Endpoint
	self    transport.NodeAddr // advertised address
	store   *kv.Store
	stamps  stampClock // the times handed out by stampMs
	raft    *consensus.Node
	layer   *transport.StreamLayer
	reg     *rpc.Registry
	server  *rpc.Server
	metrics *metrics
	blobs   *blobService // set by startBlobs
	http    *http.Server
	httpLn  net.Listener
	started time.Time
	hooks   atomic.Pointer[hookService] // set by startHooks; publishEvent reads it

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start builds and starts a node. On error everything already started is
// closed again.
func Start(cfg Config, logger *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	keys, err := auth.Derive(cfg.Cookie)
	if err != nil {
		return nil, fmt.Errorf("--cookie: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, log: logger.With("node", cfg.NodeID), keys: keys, started: time.Now(), ctx: ctx, cancel: cancel}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	id, err := n.identity()
	if err != nil {
		return nil, err
	}
	if n.ep, err = transport.Listen(transport.Config{Identity: id, Bind: cfg.Bind, Faults: cfg.Faults}, n.log); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Bind, err)
	}
	if n.self, err = n.advertised(); err != nil {
		return nil, err
	}
	if cfg.RestoreFrom != "" {
		if err := n.seedFromBackup(); err != nil {
			return nil, err
		}
	}
	if n.store, err = kv.Open(filepath.Join(cfg.DataDir, stateFile), n.log); err != nil {
		return nil, err
	}
	n.layer = transport.NewStreamLayer(n.ep, ALPNRaft, keys.Node, n.isMember, n.log)
	rcfg := consensus.Config{
		NodeID:            cfg.NodeID,
		Dir:               filepath.Join(cfg.DataDir, raftDir),
		Addr:              raft.ServerAddress(n.self.String()),
		HeartbeatTimeout:  ms(cfg.HeartbeatTimeoutMs),
		ElectionTimeout:   ms(cfg.ElectionTimeoutMs),
		SnapshotThreshold: cfg.SnapshotThreshold,
		TrailingLogs:      cfg.TrailingLogs,
		WALSegmentSize:    cfg.WALSegmentSize,
		Logger:            n.log,
		OnSnapshot:        n.snapshotObserved,
	}
	n.metrics = newMetrics(n)
	if n.raft, err = consensus.Open(rcfg, timedFSM{n.store, n.metrics}, n.layer); err != nil {
		return nil, err
	}
	n.reg = rpc.NewRegistry()
	n.registerKV()
	n.registerCluster()
	n.registerCoord()
	if err := n.startHooks(cfg.Hooks); err != nil {
		return nil, err
	}
	if err := n.startBlobs(); err != nil {
		return nil, err
	}
	n.server = &rpc.Server{
		Registry:       n.reg,
		Credential:     keys.Client,
		NodeCredential: keys.Node,
		Forward:        n.forward,
		Observe:        n.metrics.observeRPC,
		Logger:         n.log,
	}
	n.ep.Handle(ALPNClient, func(ctx context.Context, c *transport.Conn) { n.server.ServeConn(ctx, c) })
	n.startWatch()
	n.ep.Serve()

	if cfg.HTTPAddr != "" {
		if err := n.startHTTP(); err != nil {
			return nil, err
		}
	}
	if cfg.Init && !n.raft.Initialized() {
		if err := n.initCluster(ctx); err != nil {
			return nil, err
		}
	}
	if err := n.writeTicket(); err != nil {
		return nil, err
	}
	n.goFunc(n.sweepExpired)
	if cfg.Join != "" {
		n.goFunc(n.join)
	}
	n.log.Info("node started", "addr", n.self.String(), "initialized", n.raft.Initialized())
	return n, nil
}

func (n *Node) identity() (transport.Identity, error) {
	if n.cfg.SecretKey != "" {
		id, err := transport.IdentityFromHex(n.cfg.SecretKey)
		if err != nil {
			return id, fmt.Errorf("--secret-key: %w", err)
		}
		return id, nil
	}
	id, err := transport.LoadOrCreateIdentity(filepath.Join(n.cfg.DataDir, keyFile))
	if err != nil {
		return id, fmt.Errorf("loading node key: %w", err)
	}
	return id, nil
}

// advertised is the address others reach this node at.
func (n *Node) advertised() (transport.NodeAddr, error) {
	if n.cfg.Advertise != "" {
		a := transport.NodeAddr{Key: n.ep.Identity().Public(), Addrs: []string{n.cfg.Advertise}}
		return a, a.Validate()
	}
	if n.ep.Addr().IP.IsUnspecified() {
		return transport.NodeAddr{}, fmt.Errorf("--bind %s listens on all interfaces: set --advertise HOST:PORT to the address other nodes and clients should use", n.cfg.Bind)
	}
	return n.ep.NodeAddr(), nil
}

// isMember admits a Raft peer: any cookie holder while this node knows no
// membership (it is waiting to be bootstrapped or added), else members only.
func (n *Node) isMember(peer transport.PublicKey) bool {
	if n.raft == nil {
		return true
	}
	servers, err := n.raft.Servers()
	if err != nil || len(servers) == 0 {
		return true
	}
	for _, s := range servers {
		if a, err := transport.ParseNodeAddr(string(s.Address)); err == nil && a.Key == peer {
			return true
		}
	}
	n.log.Warn("refused raft connection from a non-member", "peer", peer.String())
	return false
}

// seedFromBackup turns a backup file into this node's state and a Raft
// snapshot naming this node the single voter.
func (n *Node) seedFromBackup() error {
	raftPath := filepath.Join(n.cfg.DataDir, raftDir)
	statePath := filepath.Join(n.cfg.DataDir, stateFile)
	if _, err := os.Stat(statePath); err == nil {
		return fmt.Errorf("--restore-from: %s already holds state; use an empty --data-dir", n.cfg.DataDir)
	}
	if err := copyFile(n.cfg.RestoreFrom, statePath); err != nil {
		return fmt.Errorf("--restore-from: %w", err)
	}
	if err := kv.MarkClean(statePath); err != nil {
		return fmt.Errorf("--restore-from: %w", err)
	}
	st, err := kv.Open(statePath, n.log)
	if err != nil {
		os.Remove(statePath)
		return fmt.Errorf("--restore-from %s is not a backup: %w", n.cfg.RestoreFrom, err)
	}
	defer st.Close()
	if err := os.MkdirAll(raftPath, 0o700); err != nil {
		return err
	}
	if err := consensus.SeedFromState(raftPath, n.cfg.NodeID, raft.ServerAddress(n.self.String()), st); err != nil {
		os.Remove(statePath)
		return fmt.Errorf("--restore-from: %w", err)
	}
	n.log.Info("seeded new cluster from backup", "file", n.cfg.RestoreFrom, "index", st.AppliedIndex())
	return nil
}

// copyFile copies src to dst durably (synced before it is renamed in place).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// initCluster bootstraps this node as the single voter and waits until it
// leads and can serve.
func (n *Node) initCluster(ctx context.Context) error {
	if err := n.raft.Bootstrap(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for !n.raft.IsLeader() {
		select {
		case <-ctx.Done():
			return api.Errorf(api.CodeUnavailable, "bootstrapped, but no leader was elected within 10s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return n.raft.ReadBarrier(ctx)
}

// Ticket returns a ticket naming this node and up to 15 other members.
func (n *Node) Ticket() string {
	t := ticket.Ticket{ClusterID: n.keys.ClusterID, Credential: n.keys.Client}
	t.Peers = append(t.Peers, ticket.Peer{Key: n.self.Key, Addrs: n.self.Addrs})
	if servers, err := n.raft.Servers(); err == nil {
		for _, s := range servers {
			a, err := transport.ParseNodeAddr(string(s.Address))
			if err != nil || a.Key == n.self.Key || len(t.Peers) >= 16 {
				continue
			}
			t.Peers = append(t.Peers, ticket.Peer{Key: a.Key, Addrs: a.Addrs})
		}
	}
	return t.String()
}

func (n *Node) writeTicket() error {
	path := filepath.Join(n.cfg.DataDir, TicketFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(n.Ticket()+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing ticket: %w", err)
	}
	return os.Rename(tmp, path)
}

// Addr is this node's advertised address.
func (n *Node) Addr() transport.NodeAddr { return n.self }

// ID is this node's Raft ID.
func (n *Node) ID() uint64 { return n.cfg.NodeID }

// Endpoint exposes the node's QUIC endpoint (for fault-injection tests).
func (n *Node) Endpoint() *transport.Endpoint { return n.ep }

// Raft exposes the consensus node (for tests and the composition of services).
func (n *Node) Raft() *consensus.Node { return n.raft }

// Store exposes the local state machine.
func (n *Node) Store() *kv.Store { return n.store }

// Registry exposes the operation registry so services can register.
func (n *Node) Registry() *rpc.Registry { return n.reg }

// HTTPAddr is the bound HTTP address, or nil without --http-addr.
func (n *Node) HTTPAddr() net.Addr {
	if n.http == nil {
		return nil
	}
	return n.httpLn.Addr()
}

// goFunc runs f in a goroutine the node waits for on Close.
func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Close stops the node: background loops, HTTP, RPC, Raft, storage and the
// endpoint, in reverse start order. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		var errs []error
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			errs = append(errs, n.http.Shutdown(ctx))
			cancel()
		}
		n.wg.Wait()
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown())
		}
		if n.ep != nil {
			errs = append(errs, n.ep.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
