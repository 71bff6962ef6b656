// Package consensus runs one Raft group (hashicorp/raft with a raft-wal log
// and file snapshots) over a caller-supplied stream layer and state machine,
// and offers what the node needs on top: proposals bounded by contexts,
// linearizable read fences (ReadIndex), membership changes and metrics.
//
// It knows nothing of keys, QUIC or RPC: the state machine and the stream
// layer come in through Open, and every error it returns for a request is an
// *api.Error so the edge can send it as is.
package consensus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"

	"github.com/aspen-dev/aspen/api"
)

// FSM is the state machine Raft drives. AppliedIndex is the last log index
// it has durably applied; WaitApplied blocks until it reaches index.
// SetApplyGate gives it the wait for log entries to be on this node's disk:
// it may apply a batch before, but shows nothing of it (results, reads,
// events, AppliedIndex) until gate(last index of the batch) returns
// (kv.Store.SetApplyGate; see durable.go).
type FSM interface {
	raft.BatchingFSM
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
	SetApplyGate(gate func(index uint64))
}

// Config configures a Raft node. Zero durations and counts take the defaults
// of DefaultConfig.
type Config struct {
	NodeID uint64 // this node's Raft ID, > 0
	Dir    string // holds wal/ and snapshots/
	// Addr is this node's Raft address as peers dial it (NodeAddr text).
	Addr raft.ServerAddress

	HeartbeatTimeout   time.Duration // follower's wait for the leader before an election (default 500ms)
	ElectionTimeout    time.Duration // candidate's wait for votes (default 500ms)
	LeaderLeaseTimeout time.Duration // leader steps down after this without a quorum (default 250ms)
	SnapshotInterval   time.Duration // how often to check whether to snapshot (default 30s)
	SnapshotThreshold  uint64        // log entries since the last snapshot that trigger one (default 8192)
	TrailingLogs       uint64        // log entries kept after a snapshot for slow followers (default 10240)
	WALSegmentSize     int           // bytes per log segment file; compaction frees whole segments (default 64 MiB)
	Logger             *slog.Logger
	// OnSnapshot, if set, is told of every snapshot this node writes or
	// installs from the leader (not of the catch-up restore at Open). It
	// runs on a Raft goroutine and must not block.
	OnSnapshot func(SnapshotEvent)
}

// DefaultConfig returns the defaults: sub-second failover on a LAN.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.LeaderLeaseTimeout <= 0 {
		c.LeaderLeaseTimeout = min(d.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.NodeID == 0:
		return errors.New("node id must be > 0")
	case c.Dir == "":
		return errors.New("raft directory is required")
	case c.Addr == "":
		return errors.New("raft address is required")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("leader lease timeout %v must not exceed heartbeat timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	return nil
}

// The log cache keeps the newest entries in memory (see logCache): more
// than MaxAppendEntries, so the batches being replicated and applied are
// read from memory, and at most logCacheBytes of entry data.
const (
	logCacheEntries = 1024
	logCacheBytes   = 64 << 20
)

// Node is a running Raft member.
type Node struct {
	cfg   Config
	raft  *raft.Raft
	fsm   FSM
	trans *raft.NetworkTransport
	wal   *walStore
	snaps *raft.FileSnapshotStore
	log   *slog.Logger

	obsCh    chan raft.Observation
	observer *raft.Observer
	stop     chan struct{}
	wg       sync.WaitGroup

	reads     readBatcher
	proposals *proposals // waiting for their results (answers.go)

	mu        sync.Mutex
	readyTerm uint64        // term in which this leader committed a barrier
	readyCh   chan struct{} // closed when readyTerm changes
	closeOnce sync.Once
}

// ServerID is the Raft ID of a numeric node ID.
func ServerID(id uint64) raft.ServerID { return raft.ServerID(strconv.FormatUint(id, 10)) }

// ParseServerID is the inverse of ServerID.
func ParseServerID(id raft.ServerID) uint64 {
	n, _ := strconv.ParseUint(string(id), 10, 64)
	return n
}

// Open starts Raft over stream with fsm. The FSM keeps its own state across
// restarts, so Raft does not restore a snapshot at start unless the FSM is
// behind the newest snapshot.
func Open(cfg Config, fsm FSM, stream raft.StreamLayer) (*Node, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	logs, err := openWAL(filepath.Join(cfg.Dir, "wal"), cfg.WALSegmentSize, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("consensus: opening raft log: %w", err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: os.Stderr, Level: hclog.Warn})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("consensus: opening snapshot store: %w", err)
	}
	if err := catchUpFromSnapshot(fsm, snaps, cfg.Logger); err != nil {
		logs.Close()
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  durableStream{stream, logs.sync},
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  hlog,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = hlog

	fsm.SetApplyGate(logs.sync.waitDurable)
	var rfsm FSM = fsm
	if cfg.OnSnapshot != nil {
		rfsm = observedFSM{FSM: fsm, on: cfg.OnSnapshot}
	}
	ps := newProposals()
	r, err := raft.NewRaft(rc, answeringFSM{FSM: rfsm, proposals: ps}, newLogCache(logs, logCacheEntries, logCacheBytes), logs, snaps, durableTransport{trans, logs.sync})
	if err != nil {
		trans.Close()
		logs.Close()
		return nil, fmt.Errorf("consensus: starting raft: %w", err)
	}
	logs.leader.Store(r)
	n := &Node{
		cfg: cfg, raft: r, fsm: fsm, trans: trans, wal: logs, snaps: snaps, log: cfg.Logger, proposals: ps,
		obsCh:   make(chan raft.Observation, 64),
		stop:    make(chan struct{}),
		readyCh: make(chan struct{}),
	}
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.RaftState)
		return ok
	})
	r.RegisterObserver(n.observer)
	n.wg.Add(1)
	go n.watchLeadership()
	return n, nil
}

// walStore is a raft-wal log whose Close also closes its metadata database
// (raft-wal's own Close leaves that file locked), and whose fsyncs the
// leader defers to a syncer (see durable.go).
type walStore struct {
	*wal.WAL
	meta   *metadb.BoltMetaDB
	sync   *syncer
	leader atomic.Pointer[raft.Raft] // set once Raft runs; before, every write is synced
	mu     sync.Mutex                // orders appends and deletes with the durable index they set
}

func openWAL(dir string, segmentSize int, logger *slog.Logger) (*walStore, error) {
	meta := &metadb.BoltMetaDB{}
	if segmentSize <= 0 {
		segmentSize = wal.DefaultSegmentSize
	}
	// nothing is deferred until the log is open and its durable index known
	s := newSyncer(0)
	files := sealFixFiler{segment.NewFiler(dir, syncedFS{FS: fs.New(), s: s, log: cmp.Or(logger, slog.Default())})}
	w, err := wal.Open(dir, wal.WithMetaStore(syncedMeta{meta, s}), wal.WithSegmentSize(segmentSize), wal.WithSegmentFiler(files))
	if err != nil {
		s.close()
		meta.Close()
		return nil, err
	}
	last, err := w.LastIndex()
	if err != nil {
		s.close()
		return nil, errors.Join(err, w.Close(), meta.Close())
	}
	s.setDurable(last)
	return &walStore{WAL: w, meta: meta, sync: s}, nil
}

// StoreLogs appends logs. The leader's append returns once written and is
// fsynced in the background; any other append returns once on disk.
func (w *walStore) StoreLogs(logs []*raft.Log) error {
	// Raft calls StoreLogs from its main goroutine, which alone changes its
	// state, so the state read here is the caller's own.
	r := w.leader.Load()
	return w.storeLogs(logs, r != nil && r.State() == raft.Leader)
}

// storeLogs appends logs, fsyncing them in the background if deferSync.
// raft-wal ends every append with a Sync of the segment file it wrote
// (segment.Writer.Append), which syncedFile turns into a queued fsync; the
// mark queued after it is therefore covered by it.
func (w *walStore) storeLogs(logs []*raft.Log, deferSync bool) error {
	if len(logs) == 0 {
		return nil
	}
	last := logs[len(logs)-1].Index
	w.mu.Lock()
	defer w.mu.Unlock()
	if deferSync {
		w.sync.async.Store(true)
		err := w.WAL.StoreLogs(logs)
		w.sync.async.Store(false)
		if err != nil {
			return err
		}
		w.sync.enqueue(syncRequest{index: last})
		return nil
	}
	if err := w.WAL.StoreLogs(logs); err != nil {
		return err
	}
	w.sync.drain()
	w.sync.setDurable(last)
	return nil
}

// StoreLog appends one log (see StoreLogs).
func (w *walStore) StoreLog(l *raft.Log) error { return w.StoreLogs([]*raft.Log{l}) }

// DeleteRange deletes logs min..max, once the queued fsyncs ran. Deleting
// the tail, as a follower does when a new leader overwrites entries, or the
// whole log, as installing a snapshot does, lowers the durable index to the
// new last index.
func (w *walStore) DeleteRange(min, max uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sync.drain()
	if err := w.WAL.DeleteRange(min, max); err != nil {
		return err
	}
	last, err := w.WAL.LastIndex()
	if err != nil {
		return err
	}
	w.sync.lowerDurable(last)
	return nil
}

// Close runs the queued fsyncs and closes the log and its metadata database.
func (w *walStore) Close() error {
	w.sync.close()
	return errors.Join(w.WAL.Close(), w.meta.Close())
}

// sealFixFiler works around hashicorp/raft-wal#31 in v0.4.0 (the newest
// version the module proxy serves; the upstream fix came later): truncating
// the log's tail — which Raft does when a new leader overwrites a follower's
// uncommitted entries — marks the old tail segment sealed without writing
// its index block, so after a restart reading it fails ("sealed segment has
// no index block") and raft.NewRaft panics. Such a segment is opened the way
// a tail is recovered instead: by scanning its frames.
type sealFixFiler struct{ *segment.Filer }

func (f sealFixFiler) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	if info.IndexStart == 0 && !info.SealTime.IsZero() {
		info.SealTime = time.Time{}
		return f.Filer.RecoverTail(info)
	}
	return f.Filer.Open(info)
}

// catchUpFromSnapshot restores the newest snapshot into fsm when the FSM's
// own state is older than it (for example a lost or replaced state file).
func catchUpFromSnapshot(fsm FSM, snaps *raft.FileSnapshotStore, logger *slog.Logger) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("consensus: listing snapshots: %w", err)
	}
	if len(list) == 0 || list[0].Index <= fsm.AppliedIndex() {
		return nil
	}
	logger.Info("state machine behind newest snapshot; restoring", "applied", fsm.AppliedIndex(), "snapshot", list[0].Index)
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		return fmt.Errorf("consensus: opening snapshot %s: %w", list[0].ID, err)
	}
	if err := fsm.Restore(rc); err != nil {
		return fmt.Errorf("consensus: restoring snapshot %s: %w", list[0].ID, err)
	}
	return nil
}

// HasState reports whether dir already holds Raft state (a log or a snapshot).
func HasState(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "wal")); errors.Is(err, os.ErrNotExist) {
		snaps, err := os.ReadDir(filepath.Join(dir, "snapshots"))
		return err == nil && len(snaps) > 0, nil
	}
	logs, err := openWAL(filepath.Join(dir, "wal"), 0, nil)
	if err != nil {
		return false, fmt.Errorf("opening raft log: %w", err)
	}
	defer logs.Close()
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return false, err
	}
	return raft.HasExistingState(logs, logs, snaps)
}

// SeedFromState writes a snapshot of the current FSM state into dir's
// snapshot store, naming this node the single voter, so that a node started on
// it continues from the FSM's applied index. It is how a new cluster starts
// from a backup.
func SeedFromState(dir string, nodeID uint64, addr raft.ServerAddress, fsm FSM) error {
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return fmt.Errorf("opening snapshot store: %w", err)
	}
	idx := fsm.AppliedIndex()
	if idx == 0 {
		return errors.New("backup holds no applied state")
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: ServerID(nodeID), Address: addr}}}
	// the transport only encodes peer addresses for the legacy snapshot format
	_, peers := raft.NewInmemTransport("")
	defer peers.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, idx, 1, conf, idx, peers)
	if err != nil {
		return fmt.Errorf("creating snapshot: %w", err)
	}
	snap, err := fsm.Snapshot()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("snapshotting state: %w", err)
	}
	defer snap.Release()
	if err := snap.Persist(sink); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return nil
}

// watchLeadership commits a barrier whenever this node becomes leader; once
// it applies, the leader has committed an entry of its term and applied
// everything before it, so it may serve linearizable reads.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case o := <-n.obsCh:
			if o.Data.(raft.RaftState) != raft.Leader {
				continue
			}
			term := n.raft.CurrentTerm()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				if err := n.raft.Barrier(10 * time.Second).Error(); err != nil {
					n.log.Warn("leader barrier failed", "term", term, "err", err)
					return
				}
				n.mu.Lock()
				if term > n.readyTerm {
					n.readyTerm = term
					close(n.readyCh)
					n.readyCh = make(chan struct{})
				}
				n.mu.Unlock()
			}()
		}
	}
}

// Bootstrap makes this node the single voter of a new cluster. It fails
// with CONFLICT when the node already has Raft state.
func (n *Node) Bootstrap() error {
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: ServerID(n.cfg.NodeID), Address: n.cfg.Addr}}}
	err := n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return api.Errorf(api.CodeConflict, "cluster already initialized")
	}
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	return nil
}

// Propose replicates cmd and returns the FSM's response for it once applied
// on this node (the leader).
func (n *Node) Propose(ctx context.Context, cmd []byte) (any, error) {
	return n.ProposeAnswered(ctx, cmd, nil)
}

// ProposeAnswered is Propose that also calls answer with the FSM's result on
// the FSM goroutine, as soon as the FSM shows it and before Propose returns
// it, so that the caller's answer can leave without waiting for the
// caller's goroutine (see answers.go). answer must not block. It is not
// called when this node's FSM did not apply the command while Propose
// waited; it may run while Propose returns after giving up (context,
// shutdown), so the caller answers once, with whichever comes first.
func (n *Node) ProposeAnswered(ctx context.Context, cmd []byte, answer func(result any)) (any, error) {
	p, f := n.submit(cmd, answer, false)
	res, err := n.awaitResult(ctx, f, p.applied)
	if err != nil {
		// not applied here, or no longer awaited: forget it (an applied
		// proposal was taken by the FSM before Raft answered its future)
		n.proposals.remove(p)
	}
	return res, err
}

// ProposeDetached proposes cmd and returns at once, without waiting for its
// outcome: the FSM goroutine hands answer the result when this node applies
// the command (as ProposeAnswered does), and if Raft fails the proposal
// before that (this node is not or no longer the leader, or shuts down),
// fail gets the error, on another goroutine. Exactly one of them is called,
// unless Raft shuts down leaving the proposal unanswered. Neither may block.
func (n *Node) ProposeDetached(cmd []byte, answer func(result any), fail func(error)) {
	p, f := n.submit(cmd, answer, true)
	go func() {
		err := f.Error()
		if !n.proposals.remove(p) {
			return // applied and answered
		}
		if err == nil {
			err = errors.New("consensus: the command applied but its result was not handed over")
		}
		fail(n.mapErr(err))
	}()
}

// submit registers a proposal of cmd (see proposals.add) and hands it to
// Raft, its ID in the entry's Extensions.
//
// No enqueue timeout: Raft's timeout is a timer per proposal (3% of the bytes
// a put allocates), and its apply queue never stalls — the leader loop, or a
// follower's or candidate's answering ErrNotLeader, drains it — so
// enqueueing waits only behind a full queue; the caller's context still ends
// a wait for the answer.
func (n *Node) submit(cmd []byte, answer func(any), detached bool) (*proposal, raft.ApplyFuture) {
	p := n.proposals.add(answer, detached)
	return p, n.raft.ApplyLog(raft.Log{Data: cmd, Extensions: p.ext[:]}, 0)
}

// await waits for a Raft future, the caller's context or shutdown, whichever
// comes first. Raft can leave a future queued just before it shuts down
// unanswered; waiting on it alone would hang the caller, and Shutdown with it.
// Giving up on a proposal leaves its outcome unknown, and says so.
func (n *Node) await(ctx context.Context, f raft.Future) error {
	_, err := n.awaitResult(ctx, f, nil)
	return err
}

// awaitResult is await that also returns the result received on applied
// (see answers.go), which comes before the future's answer; with applied
// nil, or when the future answered first, the result is nil (futures other
// than ApplyFuture have none) or the ApplyFuture's Response.
func (n *Node) awaitResult(ctx context.Context, f raft.Future, applied <-chan any) (any, error) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends when raft answers; may outlive shutdown
	select {
	case res := <-applied:
		return res, nil
	case err := <-done:
		if err != nil {
			return nil, n.mapErr(err)
		}
		if af, ok := f.(raft.ApplyFuture); ok {
			return af.Response(), nil
		}
		return nil, nil
	case <-ctx.Done():
		return nil, api.Errorf(api.CodeUnavailable, "gave up waiting for Raft (%v); the outcome is unknown", ctx.Err())
	case <-n.stop:
		return nil, api.Errorf(api.CodeUnavailable, "node is shutting down; the outcome is unknown")
	}
}

// ReadBarrier returns once a read of the local FSM is linearizable: this node
// is the leader, has committed an entry of its term, has confirmed leadership
// with a quorum after the read began, and has applied up to the commit index
// seen at the start.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	if err := n.waitReady(ctx); err != nil {
		return err
	}
	idx, err := n.confirmRead(ctx)
	if err != nil {
		return err
	}
	target := n.lastFSMIndex(idx)
	if err := n.fsm.WaitApplied(ctx, target); err != nil {
		return api.Errorf(api.CodeUnavailable, "waiting for index %d to apply: %v", target, err)
	}
	return nil
}

// lastFSMIndex returns the highest index <= idx of an entry the FSM applies.
// Raft never hands no-op and barrier entries to the FSM, so its applied
// index stops at the last command or configuration before them.
func (n *Node) lastFSMIndex(idx uint64) uint64 {
	applied := n.fsm.AppliedIndex()
	for i := idx; i > applied; i-- {
		var l raft.Log
		if err := n.wal.GetLog(i, &l); err != nil {
			return i // cannot tell: wait for it
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return applied
}

func (n *Node) waitReady(ctx context.Context) error {
	for {
		term := n.raft.CurrentTerm()
		n.mu.Lock()
		ready, ch := n.readyTerm >= term, n.readyCh
		n.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return api.Errorf(api.CodeUnavailable, "new leader has not committed its first entry yet")
		case <-time.After(50 * time.Millisecond):
			if n.raft.State() != raft.Leader {
				return n.notLeader()
			}
		}
	}
}

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's address and numeric ID, or zero values.
func (n *Node) Leader() (raft.ServerAddress, uint64) {
	addr, id := n.raft.LeaderWithID()
	return addr, ParseServerID(id)
}

// Initialized reports whether this node belongs to a cluster: it knows a
// configuration (it was bootstrapped or learned one by replication) or a
// leader has contacted it.
func (n *Node) Initialized() bool {
	if addr, _ := n.raft.LeaderWithID(); addr != "" {
		return true // a leader contacted us: we are a member, still catching up
	}
	servers, err := n.Servers()
	return err == nil && len(servers) > 0
}

// Servers returns the current membership.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.mapErr(err)
	}
	return f.Configuration().Servers, nil
}

func (n *Node) notLeader() error {
	addr, _ := n.raft.LeaderWithID()
	return &api.Error{Code: api.CodeNotLeader, Message: "this node is not the leader", Leader: string(addr)}
}

// mapErr turns Raft errors into wire errors.
func (n *Node) mapErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrNotVoter):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return api.Errorf(api.CodeUnavailable, "leadership lost while committing; the outcome is unknown")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return api.Errorf(api.CodeUnavailable, "timed out queueing the request to Raft")
	case errors.Is(err, raft.ErrRaftShutdown):
		return api.Errorf(api.CodeUnavailable, "node is shutting down")
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return api.Errorf(api.CodeUnavailable, "leadership transfer in progress")
	}
	return err
}

func timeoutOf(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if t := time.Until(d); t > 0 {
			return t
		}
		return time.Millisecond
	}
	return def
}

// Shutdown stops Raft and closes the log. It is idempotent.
func (n *Node) Shutdown() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.stop)
		// close the transport first: it aborts streams to peers that may be
		// dead, which raft's shutdown would otherwise wait on for the full
		// network timeout
		err = n.trans.Close()
		if serr := n.raft.Shutdown().Error(); serr != nil && err == nil {
			err = serr
		}
		n.raft.DeregisterObserver(n.observer)
		n.wg.Wait()
		if cerr := n.wal.Close(); cerr != nil && err == nil {
			err = cerr
		}
	})
	return err
}
