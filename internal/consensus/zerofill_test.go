package consensus

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// memFile is a segment file in memory whose zero-chunk writes can be held.
type memFile struct {
	mu       sync.Mutex
	data     []byte
	fills    []int64       // offsets of the zero chunks written, in order
	syncs    int           // Sync calls
	hold     chan struct{} // if set, a zero chunk's write waits for it
	filling  chan int64    // receives the offset of each zero chunk as its write starts
	closeErr error
}

func newMemFile(size int64) *memFile {
	return &memFile{data: make([]byte, size), filling: make(chan int64, 64)}
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) > 0 && bytes.Count(p, []byte{0}) == len(p) {
		f.filling <- off
		if f.hold != nil {
			<-f.hold
		}
		f.mu.Lock()
		f.fills = append(f.fills, off)
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return copy(f.data[off:], p), nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	return copy(p, f.data[off:]), nil
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	f.syncs++
	f.mu.Unlock()
	return nil
}

func (f *memFile) Close() error { return f.closeErr }

func recvOffset(t *testing.T, ch <-chan int64, what string) int64 {
	t.Helper()
	select {
	case off := <-ch:
		return off
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return 0
	}
}

// The filler writes and syncs zeros into the chunks after the one the log
// writes, zeroAhead of them, and never into a chunk holding log data.
func TestSegmentIsFilledAheadOfTheLog(t *testing.T) {
	mem := newMemFile(40 * zeroChunk)
	z := fillWithZeros(mem, int64(len(mem.data)), slog.New(slog.DiscardHandler))
	select {
	case off := <-mem.filling:
		t.Fatalf("filled at %d before the log wrote anything", off)
	default:
	}
	// the header, then entries into chunk 2 (chunk 1 becomes log data)
	if _, err := z.WriteAt([]byte("header"), 0); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= zeroAhead; i++ {
		if off := recvOffset(t, mem.filling, "a zero chunk"); off != i*zeroChunk {
			t.Fatalf("zero chunk at %d, want chunk %d", off, i)
		}
	}
	entry := bytes.Repeat([]byte{7}, 100)
	at := int64(zeroAhead)*zeroChunk + 10 // into the last chunk filled
	if _, err := z.WriteAt(entry, at); err != nil {
		t.Fatal(err)
	}
	for i := int64(zeroAhead + 1); i <= 2*zeroAhead; i++ {
		if off := recvOffset(t, mem.filling, "a zero chunk after the log's"); off != i*zeroChunk {
			t.Fatalf("zero chunk at %d, want chunk %d", off, i)
		}
	}
	// the log jumps past the filler (a large entry): the filler skips to
	// the chunks after it
	far := int64(3*zeroAhead+3) * zeroChunk
	if _, err := z.WriteAt(entry, far); err != nil {
		t.Fatal(err)
	}
	if off := recvOffset(t, mem.filling, "a zero chunk after the jump"); off != far+zeroChunk {
		t.Fatalf("zero chunk at %d after the log wrote chunk %d, want chunk %d", off, far/zeroChunk, far/zeroChunk+1)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(entry))
	mem.ReadAt(got, at)
	if !bytes.Equal(got, entry) {
		t.Fatalf("log data at %d overwritten: %v", at, got[:8])
	}
	if mem.syncs < len(mem.fills) {
		t.Fatalf("%d syncs for %d zero chunks; each chunk is synced", mem.syncs, len(mem.fills))
	}
}

// A log write into the chunk being filled waits for the fill, so the zeros
// cannot land over it.
func TestLogWriteWaitsForTheChunkBeingFilled(t *testing.T) {
	mem := newMemFile(8 * zeroChunk)
	mem.hold = make(chan struct{})
	z := fillWithZeros(mem, int64(len(mem.data)), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { close(mem.hold); z.Close() })
	z.WriteAt([]byte("header"), 0)
	if off := recvOffset(t, mem.filling, "the first zero chunk"); off != zeroChunk {
		t.Fatalf("first zero chunk at %d, want %d", off, zeroChunk)
	}
	written := make(chan struct{})
	go func() {
		z.WriteAt([]byte("entry"), zeroChunk+5) // into the chunk being filled
		close(written)
	}()
	select {
	case <-written:
		t.Fatal("a log write into the chunk being filled went ahead of the fill")
	case <-time.After(50 * time.Millisecond): // a wrong early write shows at once
	}
	mem.hold <- struct{}{} // the fill of chunk 1 completes
	<-written
	got := make([]byte, 5)
	mem.ReadAt(got, zeroChunk+5)
	if string(got) != "entry" {
		t.Fatalf("log data %q after the fill, want entry", got)
	}
}
