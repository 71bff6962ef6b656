package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/fxamacker/cbor/v2"

	"github.com/aspen-dev/aspen/api"
)

// MaxFrameSize bounds one envelope: a 100-operation batch of 1 MiB values
// does not fit, so batches are also bounded by size at the edge.
const MaxFrameSize = 16 << 20

// Request is the envelope of a call.
type Request struct {
	Op        string          `cbor:"op"`
	Auth      []byte          `cbor:"auth,omitempty"`  // proof of the client credential bound to this connection
	Token     string          `cbor:"token,omitempty"` // capability token (reserved)
	Forwarded bool            `cbor:"fwd,omitempty"`   // set by a follower forwarding to the leader
	Body      cbor.RawMessage `cbor:"body,omitempty"`
}

// Response is the envelope of an answer: a body or an error.
type Response struct {
	Body  cbor.RawMessage `cbor:"body,omitempty"`
	Error *api.Error      `cbor:"error,omitempty"`
}

var (
	encMode cbor.UserBufferEncMode // Marshal, and MarshalToBuffer into pooled buffers
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().UserBufferEncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 16,
		MaxNestedLevels:  32,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v as deterministic CBOR.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes CBOR into v with the protocol's limits.
func Unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }

// ErrFrameTooLarge is returned when a frame's length prefix exceeds the limit.
var ErrFrameTooLarge = api.Errorf(api.CodeResourceExhausted, "message larger than the %d-byte limit", MaxFrameSize)

// MarshalBuffer encodes v like Marshal into a pooled buffer, which the
// caller hands back with ReleaseBuffer once nothing uses its bytes.
func MarshalBuffer(v any) (*bytes.Buffer, error) {
	buf := takeBuffer()
	if err := encMode.MarshalToBuffer(v, buf); err != nil {
		ReleaseBuffer(buf)
		return nil, err
	}
	return buf, nil
}

// WriteFrame writes v as a 4-byte big-endian length followed by its CBOR
// encoding, built in a pooled buffer (io.Writer keeps no reference to it).
func WriteFrame(w io.Writer, v any) error {
	buf := takeBuffer()
	defer ReleaseBuffer(buf)
	if err := appendFrame(buf, v); err != nil {
		return err
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

// appendFrame appends v to buf as WriteFrame writes it.
func appendFrame(buf *bytes.Buffer, v any) error {
	start := buf.Len()
	buf.Write([]byte{0, 0, 0, 0}) // the length, set below
	if err := encMode.MarshalToBuffer(v, buf); err != nil {
		buf.Truncate(start)
		return fmt.Errorf("encoding frame: %w", err)
	}
	b := buf.Bytes()[start:]
	if len(b)-4 > MaxFrameSize {
		buf.Truncate(start)
		return ErrFrameTooLarge
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return nil
}

// frameBuffers holds the buffers frames are encoded into and read into.
var frameBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// takeBuffer returns an empty buffer of the pool.
func takeBuffer() *bytes.Buffer {
	buf := frameBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	return buf
}

// ReleaseBuffer returns a buffer of MarshalBuffer to the pool, unless a
// large message grew it: one big message must not pin its memory.
func ReleaseBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		frameBuffers.Put(buf)
	}
}

// errNoFrame marks a ReadFrame that failed before any byte of the frame
// arrived: between calls on a reused stream, the stream ended rather than
// broke.
var errNoFrame = errors.New("no frame started")

// frameChunk is how much of a frame's body ReadFrame allocates before the
// bytes arrive: a length prefix alone must not make a peer's silence cost
// MaxFrameSize bytes of memory per stream.
const frameChunk = 64 << 10

// ReadFrame reads one frame written by WriteFrame into v. It refuses lengths
// above MaxFrameSize and allocates a large body only as its bytes arrive, so
// it never holds more than the announced length nor much more than what was
// received. A stream that ends inside a frame fails with io.ErrUnexpectedEOF;
// an undecodable body fails with INVALID_ARGUMENT.
func ReadFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if n == 0 {
			return fmt.Errorf("reading frame header: %w (%w)", err, errNoFrame)
		}
		return fmt.Errorf("reading frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return fmt.Errorf("frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	var b []byte
	var err error
	if n <= frameChunk {
		// a small body is read into a pooled buffer: decoding copies what
		// it keeps (byte strings, raw messages), so the buffer is free after
		buf := takeBuffer()
		defer ReleaseBuffer(buf)
		buf.Grow(int(n))
		b = buf.AvailableBuffer()[:n]
		_, err = io.ReadFull(r, b)
	} else {
		b, err = readBody(r, int(n))
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading %d-byte frame: %w", n, err)
	}
	if err := Unmarshal(b, v); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "decoding frame: %v", err)
	}
	return nil
}

// readBody reads exactly n bytes. Its buffer never exceeds n and grows only
// when full, to at most twice the bytes received or frameChunk.
func readBody(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, 0, min(n, frameChunk))
	for len(b) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), len(b)+min(n-len(b), max(len(b), frameChunk)))
			copy(nb, b)
			b = nb
		}
		m, err := io.ReadFull(r, b[len(b):min(n, cap(b))])
		b = b[:len(b)+m]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}
