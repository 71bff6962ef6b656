package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"lukechampine.com/blake3"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// ALPN is the blob transfer protocol.
//
// One bidirectional QUIC stream per transfer. The caller writes one frame
// (rpc.WriteFrame) holding a TransferRequest whose Auth is
// auth.Proof(credential, connection exporter), or, with ReadCap, the proof
// of a blob ticket's read capability, which admits a get of that one blob.
//
//   - get: the caller closes its side; the server answers a TransferResponse
//     frame, then, on success, the Bao slice encoding (16 KiB groups) of the
//     requested range, which the caller verifies group by group (DecodeSlice).
//   - put: the caller sends the blob's raw bytes after the frame and closes
//     its side; the server stores them and answers a TransferResponse frame
//     with the hash, which the caller compares with the hash it computed.
const ALPN = "aspen/blobs/1"

// Transfer operations.
const (
	OpGet = "get"
	OpPut = "put"
)

// TransferRequest is the first frame of a transfer.
type TransferRequest struct {
	Op   string `cbor:"op"`
	Auth []byte `cbor:"auth"`
	// Hash names the blob to get; for put, optional: the server refuses
	// content with another hash.
	Hash []byte `cbor:"hash,omitempty"`
	// Offset and Length select a byte range for get; Length < 0 means to the
	// end of the blob.
	Offset int64 `cbor:"offset,omitempty"`
	Length int64 `cbor:"length,omitempty"`
	// Tags are protection tags to set on a put blob (service-defined).
	Tags []string `cbor:"tags,omitempty"`
	// NoFetch asks the server not to pull a missing blob from its peers
	// (set by nodes fetching from each other, so fetches do not chain).
	NoFetch bool `cbor:"no_fetch,omitempty"`
	// Replica marks a put by a node copying a blob it holds (replication),
	// as opposed to a client adding one.
	Replica bool `cbor:"replica,omitempty"`
	// ReadCap says Auth proves ReadCapability(key, Hash, ExpiresMs) (a blob
	// ticket's token) instead of a cluster credential: a get of Hash only,
	// refused once ExpiresMs (Unix ms; 0 never) has passed.
	ReadCap   bool  `cbor:"read_cap,omitempty"`
	ExpiresMs int64 `cbor:"expires_ms,omitempty"`
}

// TransferResponse is the server's frame.
type TransferResponse struct {
	Error  *api.Error `cbor:"error,omitempty"`
	Hash   []byte     `cbor:"hash,omitempty"`
	Size   int64      `cbor:"size"`
	Offset int64      `cbor:"offset,omitempty"`
	Length int64      `cbor:"length,omitempty"`
	New    bool       `cbor:"new,omitempty"`
}

// Server serves ALPN on accepted connections. Set its fields before the
// first ServeConn.
type Server struct {
	Store *Store
	// Credentials are the secrets a client may prove (the client
	// credential); PeerCredentials those a peer node proves (the node
	// secret). Together at least one is required.
	Credentials     [][]byte
	PeerCredentials [][]byte
	// CapabilityKey checks the read capabilities of blob tickets
	// (auth.Keys.Capability); when empty, tickets are refused.
	CapabilityKey []byte
	// Send, when set, wraps the stream a get writes its slice encoding to.
	// Tests only: it lets a server tamper with what it serves.
	Send func(w io.Writer) io.Writer
	// Fetch, when set, is called by get for a blob missing locally; it
	// should store the blob (pulling it from a peer) or fail with ErrNotFound.
	Fetch func(ctx context.Context, h Hash) error
	// Stored, when set, is called after a put stored (or found) a blob,
	// before the answer; an error fails the put (the bytes stay, unreferenced).
	Stored func(ctx context.Context, res PutResult, tags []string) error
	// Added, when set, is called after a client's (not a replica's) put
	// succeeded; it must not block.
	Added func(res PutResult)
	// Served, when set, is called after a get by a client or a ticket
	// holder (not a peer fetching a replica) sent its slice; it must not
	// block.
	Served func(h Hash, offset, length int64)
	// Corrupt, when set, is called when a get finds the local copy corrupt
	// (ErrCorrupt); it should drop the copy and fetch a good one. A get that
	// found it on opening is then served from the new copy; one that found
	// it while sending ends the stream (the caller retries).
	Corrupt func(ctx context.Context, h Hash) error
	// IdleTimeout bounds the wait for the caller's next bytes (default 30s).
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// Conn is the part of a transport connection the server uses.
type Conn interface {
	AcceptStream(ctx context.Context) (*quic.Stream, error)
	Exporter() ([]byte, error)
}

// ServeConn serves transfers on c until it closes, each stream in its own
// goroutine, and returns once they have all finished.
func (s *Server) ServeConn(ctx context.Context, c Conn) {
	var wg sync.WaitGroup
	defer wg.Wait()
	exp, expErr := c.Exporter()
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveStream(ctx, st, exp, expErr)
		}()
	}
}

func (s *Server) idle() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return 30 * time.Second
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// authorize admits req on a connection with TLS exporter exp: a proof of
// one of the Credentials admits anything; a read capability (ReadCap)
// admits a get of its own blob until it expires. A refusal is an
// UNAUTHORIZED *api.Error saying why.
func (s *Server) authorize(exp []byte, expErr error, req *TransferRequest) (peer bool, err error) {
	if expErr != nil {
		return false, api.Errorf(api.CodeUnauthorized, "cannot check credentials on this connection: %v", expErr)
	}
	if !req.ReadCap {
		for i, c := range slices.Concat(s.Credentials, s.PeerCredentials) {
			if len(c) > 0 && auth.VerifyProof(c, exp, req.Auth) {
				return i >= len(s.Credentials), nil
			}
		}
		return false, api.Errorf(api.CodeUnauthorized, "missing or invalid cluster credential: use a ticket of this cluster")
	}
	if req.Op != OpGet {
		return false, api.Errorf(api.CodeUnauthorized, "a blob ticket only allows reading its blob, not %q", req.Op)
	}
	h, err := hashOf(req.Hash)
	if err != nil {
		return false, err
	}
	if len(s.CapabilityKey) == 0 || !auth.VerifyProof(ReadCapability(s.CapabilityKey, h, req.ExpiresMs), exp, req.Auth) {
		return false, api.Errorf(api.CodeUnauthorized, "blob ticket not valid for blob %s: forged, altered, or issued for another blob or cluster", h)
	}
	if req.ExpiresMs != 0 && time.Now().UnixMilli() >= req.ExpiresMs {
		return false, api.Errorf(api.CodeUnauthorized, "blob ticket expired at %s: ask for a new one (aspen-cli blob ticket %s)",
			time.UnixMilli(req.ExpiresMs).UTC().Format(time.RFC3339), h)
	}
	return false, nil
}

func (s *Server) serveStream(ctx context.Context, st *quic.Stream, exp []byte, expErr error) {
	defer st.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(st.Context(), cancel)()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req TransferRequest
	if err := rpc.ReadFrame(st, &req); err != nil {
		st.CancelRead(0)
		s.reply(st, &TransferResponse{Error: toAPI(err)})
		return
	}
	peer, err := s.authorize(exp, expErr, &req)
	if err != nil {
		st.CancelRead(0)
		s.reply(st, &TransferResponse{Error: toAPI(err)})
		return
	}
	switch req.Op {
	case OpGet:
		st.CancelRead(0)
		s.get(ctx, st, &req, peer)
	case OpPut:
		s.put(ctx, st, &req)
	default:
		st.CancelRead(0)
		s.reply(st, &TransferResponse{Error: api.Errorf(api.CodeUnimplemented, "unknown blob transfer %q", req.Op)})
	}
}

func (s *Server) reply(st *quic.Stream, resp *TransferResponse) {
	_ = st.SetWriteDeadline(time.Now().Add(s.idle()))
	if err := rpc.WriteFrame(st, resp); err != nil {
		s.logger().Debug("blob: writing answer", "err", err)
	}
}

func (s *Server) get(ctx context.Context, st *quic.Stream, req *TransferRequest, peer bool) {
	h, err := hashOf(req.Hash)
	if err != nil {
		s.reply(st, &TransferResponse{Error: toAPI(err)})
		return
	}
	rec := Recovery{Fetch: s.Fetch, Replace: s.Corrupt}
	if req.NoFetch {
		rec.Fetch = nil
	}
	r, err := s.Store.OpenOr(ctx, h, rec)
	if err != nil {
		s.reply(st, &TransferResponse{Error: toAPI(err)})
		return
	}
	defer r.Close()
	off, n := req.Offset, req.Length
	if n < 0 {
		n = r.Size() - off
	}
	if off < 0 || n < 0 || off+n > r.Size() {
		s.reply(st, &TransferResponse{Error: api.Errorf(api.CodeInvalidArgument, "range %d+%d is outside the blob's %d bytes", req.Offset, req.Length, r.Size())})
		return
	}
	s.reply(st, &TransferResponse{Hash: h[:], Size: r.Size(), Offset: off, Length: n})
	var out io.Writer = deadlineWriter{st, s.idle()}
	if s.Send != nil {
		out = s.Send(out)
	}
	if err := r.WriteSlice(out, off, n); err != nil {
		// the caller sees a truncated stream and fails verification
		s.logger().Warn("blob: sending failed", "hash", h.String(), "err", err)
		if errors.Is(err, ErrCorrupt) && s.Corrupt != nil {
			// replaced before the caller learns of the failure, so that its
			// retry finds a good copy rather than the corrupt one again
			r.Close()
			if err := s.Corrupt(ctx, h); err != nil {
				s.logger().Warn("blob: replacing corrupt copy failed", "hash", h.String(), "err", err)
			}
		}
		st.CancelWrite(1)
		return
	}
	if !peer && s.Served != nil {
		s.Served(h, off, n)
	}
}

func (s *Server) put(ctx context.Context, st *quic.Stream, req *TransferRequest) {
	var want *Hash
	if len(req.Hash) > 0 {
		h, err := hashOf(req.Hash)
		if err != nil {
			st.CancelRead(0)
			s.reply(st, &TransferResponse{Error: toAPI(err)})
			return
		}
		want = &h
	}
	res, err := s.Store.PutExpect(ctx, deadlineReader{st, s.idle()}, want)
	st.CancelRead(0)
	if err == nil && s.Stored != nil {
		err = s.Stored(ctx, res, req.Tags)
	}
	if err != nil {
		s.reply(st, &TransferResponse{Error: toAPI(err)})
		return
	}
	s.reply(st, &TransferResponse{Hash: res.Hash[:], Size: res.Size, New: res.New})
	if s.Added != nil && !req.Replica {
		s.Added(res)
	}
}

// deadlineReader extends the stream's read deadline before every read, so
// a transfer may be long but a silent peer is dropped.
type deadlineReader struct {
	st   *quic.Stream
	idle time.Duration
}

func (d deadlineReader) Read(p []byte) (int, error) {
	_ = d.st.SetReadDeadline(time.Now().Add(d.idle))
	return d.st.Read(p)
}

type deadlineWriter struct {
	st   *quic.Stream
	idle time.Duration
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.st.SetWriteDeadline(time.Now().Add(d.idle))
	return d.st.Write(p)
}

func hashOf(b []byte) (Hash, error) {
	var h Hash
	if len(b) != len(h) {
		return h, api.Errorf(api.CodeInvalidArgument, "blob hash of %d bytes; want %d", len(b), len(h))
	}
	copy(h[:], b)
	return h, nil
}

// toAPI maps store errors to wire errors, once.
func toAPI(err error) *api.Error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrNotFound):
		return api.Errorf(api.CodeNotFound, "%v", err)
	case errors.Is(err, ErrTooLarge):
		return api.Errorf(api.CodeResourceExhausted, "%v", err)
	case errors.Is(err, ErrHashMismatch):
		return api.Errorf(api.CodeInvalidArgument, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return api.Errorf(api.CodeUnavailable, "%v", err)
	default:
		return api.Errorf(api.CodeInternal, "%v", err)
	}
}

// StreamOpener is the part of a connection a transfer caller uses.
type StreamOpener interface {
	OpenStream(ctx context.Context) (*quic.Stream, error)
}

// GetRequest says what Get fetches and how it proves its right to.
type GetRequest struct {
	Hash Hash
	// Offset and Length select bytes [Offset, Offset+Length); Length < 0
	// means to the end of the blob.
	Offset, Length int64
	// Proof is auth.Proof(secret, the connection's exporter), the secret
	// being a cluster credential or, with ReadCap, a blob ticket's token.
	Proof []byte
	// ReadCap and ExpiresMs: see TransferRequest.
	ReadCap   bool
	ExpiresMs int64
	// NoFetch: see TransferRequest.
	NoFetch bool
}

// Get fetches the bytes req selects over c and writes them to dst, each 16
// KiB group only after it was verified against req.Hash. It returns the
// blob's size. A server error is an *api.Error; a tampered stream fails
// with ErrCorrupt after the verified bytes before it.
func Get(ctx context.Context, c StreamOpener, req GetRequest, dst io.Writer) (int64, error) {
	h := req.Hash
	st, err := c.OpenStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("blob get %s: %w", h, err)
	}
	defer st.CancelRead(0)
	defer context.AfterFunc(ctx, func() { st.CancelRead(2); st.CancelWrite(2) })()
	treq := &TransferRequest{Op: OpGet, Auth: req.Proof, Hash: h[:], Offset: req.Offset, Length: req.Length,
		NoFetch: req.NoFetch, ReadCap: req.ReadCap, ExpiresMs: req.ExpiresMs}
	if err := rpc.WriteFrame(st, treq); err != nil {
		return 0, fmt.Errorf("blob get %s: %w", h, err)
	}
	_ = st.Close()
	var resp TransferResponse
	if err := rpc.ReadFrame(st, &resp); err != nil {
		return 0, fmt.Errorf("blob get %s: reading answer: %w", h, err)
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	size, err := DecodeSlice(dst, st, h, resp.Offset, resp.Length)
	if err != nil {
		return 0, err
	}
	if size != resp.Size {
		return 0, fmt.Errorf("blob %s: announced %d bytes, tree says %d: %w", h, resp.Size, size, ErrCorrupt)
	}
	return size, nil
}

// Put sends the content of r over c and returns what the server stored. It
// hashes the bytes it sends and fails with ErrHashMismatch if the server
// reports another hash. want, when set, makes the server refuse other
// content. A server error is an *api.Error.
func Put(ctx context.Context, c StreamOpener, proof []byte, r io.Reader, want *Hash, tags []string) (PutResult, error) {
	req := &TransferRequest{Op: OpPut, Auth: proof, Tags: tags}
	if want != nil {
		req.Hash = want[:]
	}
	return put(ctx, c, req, r)
}

// PutReplica is Put of blob h by a node that holds it, copying it to
// another node (the receiver does not replicate it further).
func PutReplica(ctx context.Context, c StreamOpener, proof []byte, r io.Reader, h Hash) (PutResult, error) {
	return put(ctx, c, &TransferRequest{Op: OpPut, Auth: proof, Hash: h[:], Replica: true}, r)
}

func put(ctx context.Context, c StreamOpener, req *TransferRequest, r io.Reader) (PutResult, error) {
	st, err := c.OpenStream(ctx)
	if err != nil {
		return PutResult{}, fmt.Errorf("blob put: %w", err)
	}
	defer st.CancelRead(0)
	defer context.AfterFunc(ctx, func() { st.CancelRead(2); st.CancelWrite(2) })()
	if err := rpc.WriteFrame(st, req); err != nil {
		return PutResult{}, fmt.Errorf("blob put: %w", err)
	}
	hasher := blake3.New(32, nil)
	n, err := io.CopyBuffer(st, io.TeeReader(r, hasher), make([]byte, 256<<10))
	var resp TransferResponse
	if err != nil {
		// the server may have refused early (too large, bad credential)
		if rerr := rpc.ReadFrame(st, &resp); rerr == nil && resp.Error != nil {
			return PutResult{}, resp.Error
		}
		return PutResult{}, fmt.Errorf("blob put: sending: %w", err)
	}
	_ = st.Close()
	if err := rpc.ReadFrame(st, &resp); err != nil {
		return PutResult{}, fmt.Errorf("blob put: reading answer: %w", err)
	}
	if resp.Error != nil {
		return PutResult{}, resp.Error
	}
	var sent Hash
	copy(sent[:], hasher.Sum(nil))
	got, err := hashOf(resp.Hash)
	if err != nil {
		return PutResult{}, err
	}
	if got != sent || resp.Size != n {
		return PutResult{}, fmt.Errorf("blob put: sent %s (%d bytes), server stored %s (%d bytes): %w", sent, n, got, resp.Size, ErrHashMismatch)
	}
	return PutResult{Hash: got, Size: resp.Size, New: resp.New}, nil
}
