// Package blob owns the node's content-addressed blob files: BLAKE3-named
// files with a Bao outboard tree beside each, written by streaming and
// verified chunk group by chunk group when read, and the aspen/blobs/1
// transfer protocol that moves them between nodes and clients.
//
// On disk, under Config.Dir:
//
//	tmp/                  files being written (removed on failure)
//	ab/abcd…ef            the bytes of blob abcd…ef (64 hex characters)
//	ab/abcd…ef.obao       its Bao outboard encoding (16 KiB chunk groups)
//
// A blob is present when its data file exists; the outboard is renamed in
// place before the data file, so a present blob always has one.
package blob

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"lukechampine.com/blake3"
	"lukechampine.com/blake3/bao"
)

// MaxSize is the default and largest size of one blob: 1 GiB.
const MaxSize int64 = 1 << 30

// Group is the Bao chunk-group parameter: 1 KiB BLAKE3 chunks << 4 = 16 KiB
// groups, the unit that is verified on read and in transfers.
const Group = 4

// GroupSize is the number of bytes in one Bao chunk group.
const GroupSize = 1024 << Group

const outboardExt = ".obao"

// Errors of the Store. Compare with errors.Is; they are wrapped with the hash.
var (
	// ErrNotFound means the blob is not stored on this node.
	ErrNotFound = errors.New("blob not found")
	// ErrTooLarge means the input exceeded the store's size limit.
	ErrTooLarge = errors.New("blob too large")
	// ErrCorrupt means bytes on disk or received from a peer do not match
	// the blob's hash (Bao verification failed).
	ErrCorrupt = errors.New("blob corrupt: bytes do not match the hash")
	// ErrHashMismatch means content received for an expected hash hashed to
	// something else.
	ErrHashMismatch = errors.New("blob content does not match the expected hash")
)

// Hash is the BLAKE3 hash of a blob's content; it names the blob.
type Hash [32]byte

// String is the lowercase hex form, 64 characters.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses the 64-character hex form of a hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("blob hash %q: want 64 hex characters, got %d", s, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(strings.ToLower(s))); err != nil {
		return h, fmt.Errorf("blob hash %q: %w", s, err)
	}
	return h, nil
}

// Sum returns the hash of b.
func Sum(b []byte) Hash { return blake3.Sum256(b) }

// Info describes a stored blob.
type Info struct {
	Hash    Hash
	Size    int64
	ModTime time.Time
}

// Config configures a Store.
type Config struct {
	// Dir holds the blob files (the node uses <data-dir>/blobs). Required.
	Dir string
	// MaxSize bounds one blob in bytes. Default and maximum MaxSize (1 GiB).
	MaxSize int64
	// NoSync skips fsync of written blobs (tests and benchmarks only).
	NoSync bool
}

// Store is a content-addressed blob store on local disk. All methods are safe
// for concurrent use; concurrent Puts of the same content both succeed and
// leave one copy.
type Store struct {
	cfg Config
}

// Open opens (creating if needed) the store in cfg.Dir and removes temporary
// files left by an interrupted Put.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("blob store: Dir is required")
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = MaxSize
	}
	if cfg.MaxSize < 0 || cfg.MaxSize > MaxSize {
		return nil, fmt.Errorf("blob store: MaxSize %d: must be between 1 and %d", cfg.MaxSize, MaxSize)
	}
	tmp := filepath.Join(cfg.Dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("blob store: clearing %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return &Store{cfg: cfg}, nil
}

// MaxSize is the store's limit on one blob, in bytes.
func (s *Store) MaxSize() int64 { return s.cfg.MaxSize }

func (s *Store) dataPath(h Hash) string {
	x := h.String()
	return filepath.Join(s.cfg.Dir, x[:2], x)
}

func (s *Store) outboardPath(h Hash) string { return s.dataPath(h) + outboardExt }

// PutResult is the outcome of a Put.
type PutResult struct {
	Hash Hash
	Size int64
	// New is false when the blob was already stored.
	New bool
}

// Put stores the content of r and returns its hash and size. The content is
// streamed to a temporary file while it is hashed, then its outboard tree is
// computed from that file and both are renamed in place; at no time is the
// whole blob in memory. Content already stored is kept once (New is false).
// Input longer than the size limit fails with ErrTooLarge and stores nothing.
func (s *Store) Put(ctx context.Context, r io.Reader) (Hash, int64, error) {
	res, err := s.PutExpect(ctx, r, nil)
	return res.Hash, res.Size, err
}

// PutExpect is Put that, when want is not nil, refuses content whose hash is
// not *want with ErrHashMismatch (a fetch from a peer).
func (s *Store) PutExpect(ctx context.Context, r io.Reader, want *Hash) (PutResult, error) {
	tmp, err := s.tempFile()
	if err != nil {
		return PutResult{}, err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // a no-op once renamed
	defer tmp.Close()

	hasher := blake3.New(32, nil)
	lr := &io.LimitedReader{R: ctxReader{ctx, r}, N: s.cfg.MaxSize + 1}
	// Network readers return a few KiB at a time: batch the file writes.
	bw := bufio.NewWriterSize(tmp, 1<<20)
	n, err := io.CopyBuffer(io.MultiWriter(bw, hasher), lr, make([]byte, 256<<10))
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return PutResult{}, fmt.Errorf("blob put: writing: %w", err)
	}
	if n > s.cfg.MaxSize {
		return PutResult{}, fmt.Errorf("blob put: more than %d bytes: %w", s.cfg.MaxSize, ErrTooLarge)
	}
	var h Hash
	copy(h[:], hasher.Sum(nil))
	res := PutResult{Hash: h, Size: n}
	if want != nil && *want != h {
		return res, fmt.Errorf("blob put: got %s, want %s: %w", h, *want, ErrHashMismatch)
	}
	if ok, err := s.Has(ctx, h); err != nil {
		return res, err
	} else if ok {
		return res, nil
	}
	if err := s.finish(tmp, h, n); err != nil {
		return res, fmt.Errorf("blob put %s: %w", h, err)
	}
	res.New = true
	return res, nil
}

// finish writes the outboard of the temporary data file and renames both in
// place: the outboard first, so a present data file always has its tree.
func (s *Store) finish(tmp *os.File, h Hash, size int64) error {
	if !s.cfg.NoSync {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// The outboard is 64 bytes per 16 KiB group (0.4% of the blob, 4 MiB
	// for 1 GiB); bao.Encode writes it out of order, so build it in memory
	// and write it once.
	ob := &memAt{buf: make([]byte, bao.EncodedSize(int(size), Group, true))}
	root, err := bao.Encode(ob, bufio.NewReaderSize(tmp, 1<<20), size, Group, true)
	if err != nil {
		return fmt.Errorf("computing outboard: %w", err)
	}
	if Hash(root) != h {
		// the temporary file changed under us: disk or memory trouble
		return fmt.Errorf("outboard root %x differs from the streamed hash: %w", root, ErrCorrupt)
	}
	obf, err := s.tempFile()
	if err != nil {
		return err
	}
	defer os.Remove(obf.Name())
	defer obf.Close()
	if _, err := obf.Write(ob.buf); err != nil {
		return err
	}
	if !s.cfg.NoSync {
		if err := obf.Sync(); err != nil {
			return err
		}
	}
	dir := filepath.Dir(s.dataPath(h))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Rename(obf.Name(), s.outboardPath(h)); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.dataPath(h)); err != nil {
		return err
	}
	if !s.cfg.NoSync {
		if d, err := os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) tempFile() (*os.File, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := filepath.Join(s.cfg.Dir, "tmp", hex.EncodeToString(b[:]))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("blob store: temporary file: %w", err)
	}
	return f, nil
}

// Has reports whether the blob is stored on this node. It does not read the
// content; a corrupt blob is found by reading it.
func (s *Store) Has(_ context.Context, h Hash) (bool, error) {
	_, err := os.Stat(s.dataPath(h))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("blob has %s: %w", h, err)
	}
}

// Stat describes a stored blob, or fails with ErrNotFound.
func (s *Store) Stat(_ context.Context, h Hash) (Info, error) {
	fi, err := os.Stat(s.dataPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob stat %s: %w", h, err)
	}
	return Info{Hash: h, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes a blob's files from this node. Deleting a missing blob is
// not an error. Readers that opened the blob before keep reading it.
func (s *Store) Delete(_ context.Context, h Hash) error {
	err := os.Remove(s.dataPath(h))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob delete %s: %w", h, err)
	}
	err = os.Remove(s.outboardPath(h))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob delete %s: %w", h, err)
	}
	return nil
}

// List returns up to limit blobs whose hashes sort after the hash after (the
// zero Hash to start), in hash order, and whether more follow. Its cost is
// a directory read per non-empty shard it visits.
func (s *Store) List(_ context.Context, after *Hash, limit int) ([]Info, bool, error) {
	if limit <= 0 {
		return nil, false, fmt.Errorf("blob list: limit %d must be positive", limit)
	}
	startShard, afterHex := "", ""
	if after != nil {
		afterHex = after.String()
		startShard = afterHex[:2]
	}
	shards, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, false, fmt.Errorf("blob list: %w", err)
	}
	var out []Info
	for _, sh := range shards {
		name := sh.Name()
		if !sh.IsDir() || len(name) != 2 || name < startShard {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(s.cfg.Dir, name))
		if err != nil {
			return nil, false, fmt.Errorf("blob list: %w", err)
		}
		slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		for _, e := range ents {
			n := e.Name()
			if len(n) != 64 || n <= afterHex {
				continue
			}
			h, err := ParseHash(n)
			if err != nil {
				continue
			}
			if len(out) == limit {
				return out, true, nil
			}
			fi, err := e.Info()
			if err != nil {
				continue // deleted meanwhile
			}
			out = append(out, Info{Hash: h, Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}
	return out, false, nil
}

// ctxReader ends a copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// memAt is an in-memory io.WriterAt of fixed size.
type memAt struct{ buf []byte }

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.buf)) {
		return 0, errors.New("outboard write out of range")
	}
	return copy(m.buf[off:], p), nil
}
