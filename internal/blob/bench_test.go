package blob

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3"
)

const benchSize = 64 << 20

// BenchmarkHash is the BLAKE3 speed of one goroutine over 1 MiB buffers.
func BenchmarkHash(b *testing.B) {
	buf := randBytes(1<<20, 1)
	h := blake3.New(32, nil)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		h.Write(buf)
	}
}

// BenchmarkDiskWrite is raw sequential file writing with fsync, the floor
// under Put.
func BenchmarkDiskWrite(b *testing.B) {
	dir := b.TempDir()
	buf := randBytes(256<<10, 2)
	b.SetBytes(benchSize)
	for b.Loop() {
		f, err := os.Create(filepath.Join(dir, "f"))
		if err != nil {
			b.Fatal(err)
		}
		for range benchSize / len(buf) {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkPut stores distinct 64 MiB blobs (streamed, hashed, outboard
// computed, fsynced).
func BenchmarkPut(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	buf := randBytes(benchSize, 3)
	b.SetBytes(benchSize)
	i := uint64(0)
	for b.Loop() {
		i++
		binary.LittleEndian.PutUint64(buf, i) // distinct content
		h, _, err := s.Put(ctx, bytes.NewReader(buf))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Delete(ctx, h)
		b.StartTimer()
	}
}

// BenchmarkOpenRead reads a 64 MiB blob with verification.
func BenchmarkOpenRead(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	h, _, err := s.Put(ctx, &patternReader{n: benchSize})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	b.SetBytes(benchSize)
	for b.Loop() {
		r, err := s.Open(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, readerOnly{r}, buf); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

type readerOnly struct{ io.Reader }
