package consensus

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/types"
)

// The leader's log fsync overlaps replication, as in etcd (Raft thesis
// §10.2.1): hashicorp/raft writes the leader's new entries and only then
// sends them to followers, so a write used to wait for two fsyncs in series.
// Here the leader's StoreLogs writes the entries and queues their fsync on a
// background syncer; replication starts at once. Raft then counts the leader
// in the commit quorum before its copy is on disk, so nothing may act on an
// index before this node's copy of it is durable:
//
//   - nothing the FSM applied is seen before it is durable here (its apply
//     gate, FSM.SetApplyGate, waits for it):
//     no client sees a result, and no read sees a write, that a crash of this
//     node could still take back without a durable majority behind it;
//   - the commit index sent to followers never exceeds this node's durable
//     index (durableTransport), so no follower applies such an entry either;
//   - this node answers no peer before all its log writes are durable
//     (durableStream): a node that stepped down acknowledges entries it
//     wrote as leader only once they are on disk;
//   - followers, and every write made while not leader, fsync before
//     returning, after all queued fsyncs (an acknowledgement covers the
//     whole log);
//   - raft-wal's metadata (segment seals and truncations, term and vote) is
//     committed only after all queued fsyncs, so its crash recovery sees the
//     order it expects.
//
// A failed fsync leaves the log's durability unknown: the syncer panics, as
// etcd exits, rather than let the node go on.

// syncer runs the deferred fsyncs of one log, in order, and tracks the
// highest log index known to be on disk.
type syncer struct {
	async   atomic.Bool   // set while the leader's StoreLogs runs: Sync defers
	pending atomic.Int64  // queued or running requests
	durable atomic.Uint64 // highest index on disk; written under mu, read anywhere

	mu       sync.Mutex
	work     *sync.Cond // signalled when a request is queued or the syncer closes
	progress *sync.Cond // signalled when requests complete or durable moves
	queue    []syncRequest
	closed   bool
	done     chan struct{}
}

// syncRequest is an fsync of file, or, with file nil, the news that every
// entry up to index was written before the fsyncs queued ahead of it.
type syncRequest struct {
	file  types.WritableFile
	index uint64
}

func newSyncer(durable uint64) *syncer {
	s := &syncer{done: make(chan struct{})}
	s.durable.Store(durable)
	s.work = sync.NewCond(&s.mu)
	s.progress = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// run fsyncs what is queued, a batch at a time: one fsync of a file covers
// every write made to it before the fsync began, so each file of the batch
// is synced once, and then the batch's highest mark is durable.
func (s *syncer) run() {
	defer close(s.done)
	s.mu.Lock()
	for {
		for len(s.queue) == 0 && !s.closed {
			s.work.Wait()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		var mark uint64
		var synced []types.WritableFile
		for _, req := range batch {
			if req.file == nil {
				mark = max(mark, req.index)
				continue
			}
			if slices.Contains(synced, req.file) {
				continue
			}
			if err := req.file.Sync(); err != nil {
				panic(fmt.Sprintf("consensus: fsync of the raft log failed; its durability is unknown: %v", err))
			}
			synced = append(synced, req.file)
		}
		s.mu.Lock()
		if mark > 0 {
			s.durable.Store(mark)
		}
		s.pending.Add(-int64(len(batch)))
		s.progress.Broadcast()
	}
}

func (s *syncer) enqueue(req syncRequest) {
	s.mu.Lock()
	s.pending.Add(1)
	s.queue = append(s.queue, req)
	s.work.Signal()
	s.mu.Unlock()
}

// drain returns once every queued fsync has run.
func (s *syncer) drain() {
	if s.pending.Load() == 0 {
		return
	}
	s.mu.Lock()
	for s.pending.Load() > 0 {
		s.progress.Wait()
	}
	s.mu.Unlock()
}

// setDurable records that the log up to index is on disk.
func (s *syncer) setDurable(index uint64) {
	s.mu.Lock()
	s.durable.Store(index)
	s.progress.Broadcast()
	s.mu.Unlock()
}

// lowerDurable caps the durable index at index: entries after it were
// deleted, and whatever is written there next must be synced anew.
func (s *syncer) lowerDurable(index uint64) {
	s.mu.Lock()
	s.durable.Store(min(s.durable.Load(), index))
	s.mu.Unlock()
}

// waitDurable returns once the log up to index is on disk.
func (s *syncer) waitDurable(index uint64) {
	if s.durable.Load() >= index {
		return
	}
	s.mu.Lock()
	for s.durable.Load() < index {
		s.progress.Wait()
	}
	s.mu.Unlock()
}

// close runs the queued fsyncs and stops the syncer.
func (s *syncer) close() {
	s.mu.Lock()
	s.closed = true
	s.work.Signal()
	s.mu.Unlock()
	<-s.done
}

// syncedFS is raft-wal's file system whose segment files' Sync defers to the
// syncer while the leader appends, and otherwise runs after every deferred
// fsync. Its segment files are filled with zeros ahead of the log
// (zerofill.go).
type syncedFS struct {
	*fs.FS
	s   *syncer
	log *slog.Logger
}

func (v syncedFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := v.FS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return syncedFile{fillWithZeros(f, int64(size), v.log), v.s}, nil
}

// OpenWriter opens the tail segment at start. Writes a crashed process left
// unsynced are fsynced first, so the whole log the node starts with is on
// disk.
func (v syncedFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := v.FS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		f.Close()
		return nil, err
	}
	return syncedFile{fillWithZeros(f, st.Size(), v.log), v.s}, nil
}

func (v syncedFS) Delete(dir, name string) error {
	v.s.drain()
	return v.FS.Delete(dir, name)
}

type syncedFile struct {
	types.WritableFile
	s *syncer
}

func (f syncedFile) Sync() error {
	if f.s.async.Load() {
		f.s.enqueue(syncRequest{file: f.WritableFile})
		return nil
	}
	f.s.drain()
	return f.WritableFile.Sync()
}

func (f syncedFile) Close() error {
	f.s.drain()
	return f.WritableFile.Close()
}

// syncedMeta commits raft-wal's metadata only after the queued fsyncs: a
// segment sealed or a tail truncated in the metadata is then on disk too.
type syncedMeta struct {
	*metadb.BoltMetaDB
	s *syncer
}

func (m syncedMeta) CommitState(st types.PersistentState) error {
	m.s.drain()
	return m.BoltMetaDB.CommitState(st)
}

func (m syncedMeta) SetStable(key, value []byte) error {
	m.s.drain()
	return m.BoltMetaDB.SetStable(key, value)
}

// durableTransport tells followers a commit index no higher than this
// node's durable index; they learn the rest with the next append or within
// CommitTimeout.
type durableTransport struct {
	*raft.NetworkTransport
	s *syncer
}

func (t durableTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	args.LeaderCommitIndex = min(args.LeaderCommitIndex, t.s.durable.Load())
	return t.NetworkTransport.AppendEntries(id, target, args, resp)
}

func (t durableTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return durablePipeline{p, t.s}, nil
}

type durablePipeline struct {
	raft.AppendPipeline
	s *syncer
}

func (p durablePipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	args.LeaderCommitIndex = min(args.LeaderCommitIndex, p.s.durable.Load())
	return p.AppendPipeline.AppendEntries(args, resp)
}

// durableStream holds every answer to a peer until this node's log writes
// are on disk.
type durableStream struct {
	raft.StreamLayer
	s *syncer
}

func (l durableStream) Accept() (net.Conn, error) {
	c, err := l.StreamLayer.Accept()
	if err != nil {
		return nil, err
	}
	return durableConn{c, l.s}, nil
}

type durableConn struct {
	net.Conn
	s *syncer
}

func (c durableConn) Write(b []byte) (int, error) {
	c.s.drain()
	return c.Conn.Write(b)
}
