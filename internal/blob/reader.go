package blob

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"lukechampine.com/blake3/bao"
)

// window is how many bytes a Reader verifies at a time: 16 chunk groups.
const window = 16 * GroupSize

// Reader reads one stored blob, checking every 16 KiB chunk group against
// the blob's hash (through its Bao outboard tree) before returning any of
// its bytes. A group that does not match fails the read with ErrCorrupt.
// It holds the outboard (64 bytes per group) and one 256 KiB window in
// memory. A Reader is not safe for concurrent use.
type Reader struct {
	h        Hash
	f        *os.File
	size     int64
	outboard []byte
	pos      int64
	buf      []byte // verified bytes of the window starting at bufOff
	bufOff   int64
}

var _ io.ReadSeekCloser = (*Reader)(nil)

// Open returns a verifying reader of a stored blob, or ErrNotFound. It fails
// with ErrCorrupt when the outboard does not describe the data file.
func (s *Store) Open(ctx context.Context, h Hash) (*Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.dataPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob open %s: %w", h, err)
	}
	r, err := newReader(h, f, s.outboardPath(h))
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// Recovery says how OpenOr gets a good local copy of a blob. Either
// function may be nil.
type Recovery struct {
	// Fetch stores a blob missing here (pulling it from a peer) or fails.
	Fetch func(ctx context.Context, h Hash) error
	// Replace drops a corrupt local copy and stores a good one, or fails.
	Replace func(ctx context.Context, h Hash) error
}

// OpenOr is Open that, when the blob is missing, fetches it with rec.Fetch
// and, when the local copy is corrupt, replaces it with rec.Replace, then
// opens it again. An error of rec.Fetch is returned as it is: a peer's
// corrupt copy (ErrCorrupt) is not taken for a corrupt local one.
func (s *Store) OpenOr(ctx context.Context, h Hash, rec Recovery) (*Reader, error) {
	r, err := s.Open(ctx, h)
	var again func(context.Context, Hash) error
	switch {
	case errors.Is(err, ErrNotFound):
		again = rec.Fetch
	case errors.Is(err, ErrCorrupt):
		again = rec.Replace
	}
	if again == nil {
		return r, err
	}
	if err := again(ctx, h); err != nil {
		return nil, err
	}
	return s.Open(ctx, h)
}

func newReader(h Hash, f *os.File, outboardPath string) (*Reader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("blob open %s: %w", h, err)
	}
	size := fi.Size()
	ob, err := os.ReadFile(outboardPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: outboard missing: %w", h, ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("blob open %s: %w", h, err)
	}
	if len(ob) < 8 || int64(binary.LittleEndian.Uint64(ob)) != size || len(ob) != bao.EncodedSize(int(size), Group, true) {
		return nil, fmt.Errorf("blob %s: outboard does not describe a %d-byte file: %w", h, size, ErrCorrupt)
	}
	if size == 0 && h != Sum(nil) {
		return nil, fmt.Errorf("blob %s: file is empty: %w", h, ErrCorrupt)
	}
	return &Reader{h: h, f: f, size: size, outboard: ob}, nil
}

// Size is the blob's length in bytes.
func (r *Reader) Size() int64 { return r.size }

// Read reads verified bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.pos < r.bufOff || r.pos >= r.bufOff+int64(len(r.buf)) {
		if err := r.load(r.pos - r.pos%window); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos-r.bufOff:])
	r.pos += int64(n)
	return n, nil
}

// load reads and verifies the window starting at off (a multiple of window).
func (r *Reader) load(off int64) error {
	n := min(int64(window), r.size-off)
	if cap(r.buf) < window {
		r.buf = make([]byte, window)
	}
	r.buf = r.buf[:n]
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = r.buf[:0]
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("blob %s: file shorter than its tree: %w", r.h, ErrCorrupt)
		}
		return fmt.Errorf("blob %s: reading at %d: %w", r.h, off, err)
	}
	if !bao.VerifyChunk(r.buf, r.outboard, Group, uint64(off), r.h) {
		r.buf = r.buf[:0]
		return fmt.Errorf("blob %s: bytes %d-%d: %w", r.h, off, off+n, ErrCorrupt)
	}
	r.bufOff = off
	return nil
}

// Seek sets the position of the next Read.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("blob seek: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("blob seek: negative position %d", offset)
	}
	r.pos = offset
	return offset, nil
}

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

// WriteSlice writes the Bao slice encoding of bytes [offset, offset+length)
// of the blob to w: the blob's length, the tree nodes on the path to those
// bytes and the chunk groups holding them, which the receiver checks with
// DecodeSlice before using any byte. The groups sent are verified here
// first, so a corrupt local copy fails with ErrCorrupt instead of being sent.
func (r *Reader) WriteSlice(w io.Writer, offset, length int64) error {
	if offset < 0 || length < 0 || offset+length > r.size {
		return fmt.Errorf("blob %s: range %d+%d outside its %d bytes", r.h, offset, length, r.size)
	}
	start := offset - offset%GroupSize
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	err := bao.ExtractSlice(bw, r, bytes.NewReader(r.outboard), Group, uint64(offset), uint64(length))
	if err != nil {
		return fmt.Errorf("blob %s: sending %d+%d: %w", r.h, offset, length, err)
	}
	return bw.Flush()
}

// DecodeSlice reads a slice encoding of bytes [offset, offset+length) of the
// blob named h from src and writes those bytes to dst, each 16 KiB group
// only after it matched h. It returns the blob's total size announced by the
// sender (authenticated when the slice reaches the end of the blob) and
// fails with ErrCorrupt at the first group that does not match.
func DecodeSlice(dst io.Writer, src io.Reader, h Hash, offset, length int64) (int64, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(src, hdr[:]); err != nil {
		return 0, fmt.Errorf("blob %s: reading slice header: %w", h, err)
	}
	size := int64(binary.LittleEndian.Uint64(hdr[:]))
	if size < 0 || size > MaxSize {
		return 0, fmt.Errorf("blob %s: announced size %d: %w", h, size, ErrCorrupt)
	}
	if size == 0 {
		if h != Sum(nil) {
			return 0, fmt.Errorf("blob %s: sender says it is empty: %w", h, ErrCorrupt)
		}
		return 0, nil
	}
	src = io.MultiReader(bytes.NewReader(hdr[:]), src)
	ok, err := bao.DecodeSlice(dst, src, Group, uint64(offset), uint64(length), h)
	if err != nil {
		return size, fmt.Errorf("blob %s: receiving: %w", h, err)
	}
	if !ok {
		return size, fmt.Errorf("blob %s: received bytes fail verification: %w", h, ErrCorrupt)
	}
	return size, nil
}
