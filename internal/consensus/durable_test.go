package consensus

import (
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// heldFile is a segment file whose fsyncs wait for release; it records the
// order in which they ran.
type heldFile struct {
	started chan string   // receives the name of each fsync as it starts
	release chan struct{} // closed to let fsyncs finish
	order   *syncOrder
	name    string
	once    sync.Once
}

// syncOrder lists finished fsyncs and other events in the order they happened.
type syncOrder struct {
	mu     sync.Mutex
	events []string
}

func (o *syncOrder) add(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *syncOrder) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.events, " ")
}

// newHeldFile's fsyncs are released at the latest when the test ends, so a
// failing test does not hang in the syncer's close.
func newHeldFile(t *testing.T, name string, order *syncOrder) *heldFile {
	f := &heldFile{name: name, order: order, started: make(chan string, 8), release: make(chan struct{})}
	t.Cleanup(f.let)
	return f
}

func (f *heldFile) let() { f.once.Do(func() { close(f.release) }) }

func newTestSyncer(t *testing.T, durable uint64) *syncer {
	s := newSyncer(durable)
	t.Cleanup(s.close)
	return s
}

func (f *heldFile) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }
func (f *heldFile) ReadAt(p []byte, off int64) (int, error)  { return 0, nil }
func (f *heldFile) Close() error                             { return nil }
func (f *heldFile) Sync() error {
	f.started <- f.name
	<-f.release
	f.order.add("fsync:" + f.name)
	return nil
}

// leaderAppend does what walStore.StoreLogs does for the leader: a write
// whose fsync is deferred, then the mark of its last index.
func leaderAppend(s *syncer, f syncedFile, index uint64) {
	s.async.Store(true)
	if err := f.Sync(); err != nil {
		panic(err)
	}
	s.async.Store(false)
	s.enqueue(syncRequest{index: index})
}

func TestLeaderAppendIsDurableOnlyAfterItsFsync(t *testing.T) {
	s := newTestSyncer(t, 5)
	order := &syncOrder{}
	held := newHeldFile(t, "leader", order)
	leaderAppend(s, syncedFile{held, s}, 6) // returns with the fsync pending
	<-held.started
	if got := s.durable.Load(); got != 5 {
		t.Fatalf("durable index %d while the fsync runs, want 5", got)
	}

	applied := make(chan struct{})
	fsm := &recordingFSM{order: order, done: applied}
	fsm.SetApplyGate(s.waitDurable) // as Open does
	go fsm.ApplyBatch([]*raft.Log{{Index: 6, Type: raft.LogCommand}})
	// a write made as follower syncs after the deferred fsync, never before
	other := newHeldFile(t, "follower", order)
	other.let()
	followerDone := make(chan struct{})
	go func() {
		syncedFile{other, s}.Sync()
		close(followerDone)
	}()
	runtime.Gosched()
	held.let()
	<-applied
	<-followerDone
	if got := s.durable.Load(); got != 6 {
		t.Fatalf("durable index %d after the fsync, want 6", got)
	}
	// the apply and the follower's fsync may come in either order, both after the leader's fsync
	if got := order.String(); !strings.HasPrefix(got, "fsync:leader ") || !strings.Contains(got, "apply") || !strings.Contains(got, "fsync:follower") {
		t.Fatalf("events %q; want the leader's fsync first, then the apply and the follower's fsync", got)
	}
}

// recordingFSM notes when a batch it applied becomes visible: after its
// apply gate returned.
type recordingFSM struct {
	FSM
	order *syncOrder
	done  chan struct{}
	gate  func(index uint64)
}

func (f *recordingFSM) SetApplyGate(gate func(index uint64)) { f.gate = gate }

func (f *recordingFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	f.gate(logs[len(logs)-1].Index)
	f.order.add("apply")
	close(f.done)
	return make([]interface{}, len(logs))
}

func TestCommitIndexSentToFollowersStaysDurable(t *testing.T) {
	s := newTestSyncer(t, 5)
	held := newHeldFile(t, "leader", &syncOrder{})
	leaderAppend(s, syncedFile{held, s}, 9)
	<-held.started

	sent := &capturePipeline{}
	p := durablePipeline{sent, s}
	req := &raft.AppendEntriesRequest{LeaderCommitIndex: 9}
	if _, err := p.AppendEntries(req, &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	if sent.commit != 5 {
		t.Fatalf("commit index %d sent while 6..9 are not on disk, want 5", sent.commit)
	}
	held.let()
	s.waitDurable(9)
	req.LeaderCommitIndex = 9
	p.AppendEntries(req, &raft.AppendEntriesResponse{})
	if sent.commit != 9 {
		t.Fatalf("commit index %d sent once durable, want 9", sent.commit)
	}
}

type capturePipeline struct {
	raft.AppendPipeline
	commit uint64
}

func (p *capturePipeline) AppendEntries(args *raft.AppendEntriesRequest, _ *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.commit = args.LeaderCommitIndex
	return nil, nil
}

func TestAnswersToPeersWaitForPendingFsyncs(t *testing.T) {
	s := newTestSyncer(t, 5)
	order := &syncOrder{}
	held := newHeldFile(t, "leader", order)
	leaderAppend(s, syncedFile{held, s}, 6)
	<-held.started

	local, remote := net.Pipe()
	defer remote.Close()
	go durableConn{local, s}.Write([]byte("ack"))
	read := make(chan struct{})
	go func() {
		b := make([]byte, 3)
		n, _ := remote.Read(b)
		order.add("peer read " + string(b[:n]))
		close(read)
	}()
	runtime.Gosched()
	held.let()
	<-read
	if got := order.String(); got != "fsync:leader peer read ack" {
		t.Fatalf("events %q; want the fsync before the answer", got)
	}
}

func TestWALDurableIndex(t *testing.T) {
	dir := t.TempDir()
	w := openTestWAL(t, dir)
	logs := []*raft.Log{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 1}}
	if err := w.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if got := w.sync.durable.Load(); got != 3 {
		t.Fatalf("durable %d after a synced append of 1..3, want 3", got)
	}
	// a new leader overwrites the tail: the durable index follows it down
	if err := w.DeleteRange(3, 3); err != nil {
		t.Fatal(err)
	}
	if got := w.sync.durable.Load(); got != 2 {
		t.Fatalf("durable %d after deleting 3, want 2", got)
	}
	// deleting the head (compaction) leaves it
	if err := w.DeleteRange(1, 1); err != nil {
		t.Fatal(err)
	}
	if got := w.sync.durable.Load(); got != 2 {
		t.Fatalf("durable %d after deleting the head, want 2", got)
	}
	w = reopenTestWAL(t, w, dir)
	if got := w.sync.durable.Load(); got != 2 {
		t.Fatalf("durable %d after reopening, want 2", got)
	}
}

func TestQueuedFsyncsOfAFileRunOnce(t *testing.T) {
	s := newTestSyncer(t, 0)
	order := &syncOrder{}
	held := newHeldFile(t, "segment", order)
	f := syncedFile{held, s}
	leaderAppend(s, f, 1)
	<-held.started // the worker runs the first batch
	leaderAppend(s, f, 2)
	leaderAppend(s, f, 3)
	held.let()
	s.waitDurable(3)
	s.drain()
	if got := order.String(); got != "fsync:segment fsync:segment" {
		t.Fatalf("fsyncs %q; want the two writes queued behind the first covered by one", got)
	}
}
