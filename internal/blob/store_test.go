package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

func readAll(t *testing.T, s *Store, h Hash) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), h)
	if err != nil {
		t.Fatalf("Open(%s): %v", h, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", h, err)
	}
	return b
}

func TestPutOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, n := range []int{0, 1, 1023, 1024, GroupSize - 1, GroupSize, GroupSize + 1, 3*GroupSize + 7, window, window + 1, 5*window + 100} {
		data := randBytes(n, uint64(n))
		h, size, err := s.Put(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Put(%d bytes): %v", n, err)
		}
		if want := Sum(data); h != want || size != int64(n) {
			t.Fatalf("Put(%d bytes) = %s, %d; want %s, %d", n, h, size, want, n)
		}
		if got := readAll(t, s, h); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back differs", n)
		}
		info, err := s.Stat(ctx, h)
		if err != nil || info.Size != int64(n) {
			t.Fatalf("Stat = %+v, %v; want size %d", info, err, n)
		}
	}
}

func TestPutDedup(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := []byte("hello blob")
	r1, err := s.PutExpect(ctx, bytes.NewReader(data), nil)
	if err != nil || !r1.New || r1.Size != 10 {
		t.Fatalf("first put = %+v, %v; want new, 10 bytes", r1, err)
	}
	r2, err := s.PutExpect(ctx, bytes.NewReader(data), nil)
	if err != nil || r2.New || r2.Hash != r1.Hash {
		t.Fatalf("second put = %+v, %v; want same hash, not new", r2, err)
	}
	list, more, err := s.List(ctx, nil, 10)
	if err != nil || more || len(list) != 1 {
		t.Fatalf("List = %v, %v, %v; want one blob", list, more, err)
	}
	tmp, _ := os.ReadDir(s.cfg.Dir + "/tmp")
	if len(tmp) != 0 {
		t.Fatalf("tmp holds %d files after puts; want 0", len(tmp))
	}
}

func TestPutExpectMismatch(t *testing.T) {
	s := newStore(t)
	want := Sum([]byte("other"))
	_, err := s.PutExpect(context.Background(), bytes.NewReader([]byte("data")), &want)
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("err = %v; want ErrHashMismatch", err)
	}
	if ok, _ := s.Has(context.Background(), Sum([]byte("data"))); ok {
		t.Fatal("mismatched content was stored")
	}
}

func TestPutTooLarge(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), MaxSize: 1000, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Put(context.Background(), bytes.NewReader(make([]byte, 1001)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v; want ErrTooLarge", err)
	}
	if _, _, err := s.Put(context.Background(), bytes.NewReader(make([]byte, 1000))); err != nil {
		t.Fatalf("put at the limit: %v", err)
	}
}

func TestMissing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var zero Hash
	if ok, err := s.Has(ctx, zero); ok || err != nil {
		t.Fatalf("Has(zero) = %v, %v", ok, err)
	}
	if _, err := s.Open(ctx, zero); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(zero) err = %v; want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, zero); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat(zero) err = %v; want ErrNotFound", err)
	}
	if err := s.Delete(ctx, zero); err != nil {
		t.Fatalf("Delete(zero) = %v", err)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	h, _, err := s.Put(ctx, bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, h); ok {
		t.Fatal("Has after Delete = true")
	}
	if _, err := os.Stat(s.outboardPath(h)); !os.IsNotExist(err) {
		t.Fatalf("outboard left behind: %v", err)
	}
}

func TestListPages(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	want := map[Hash]bool{}
	for i := range 25 {
		h, _, err := s.Put(ctx, bytes.NewReader([]byte{byte(i)}))
		if err != nil {
			t.Fatal(err)
		}
		want[h] = true
	}
	var after *Hash
	var got []Hash
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("too many pages")
		}
		list, more, err := s.List(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range list {
			if len(got) > 0 && in.Hash.String() <= got[len(got)-1].String() {
				t.Fatalf("not in order: %s after %s", in.Hash, got[len(got)-1])
			}
			got = append(got, in.Hash)
		}
		if !more {
			break
		}
		last := list[len(list)-1].Hash
		after = &last
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d blobs; want %d", len(got), len(want))
	}
	for _, h := range got {
		if !want[h] {
			t.Fatalf("listed unknown %s", h)
		}
	}
}

// TestCorruptionDetected flips one byte of a stored blob's data file (and,
// separately, of its outboard) and checks that reading detects it, while
// windows before the damage still read.
func TestCorruptionDetected(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		outboard bool
		at       int64
	}{
		{"data first group", false, 5},
		{"data last byte", false, 3*window + 999},
		{"data middle", false, window + GroupSize + 3},
		{"outboard", true, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			data := randBytes(3*window+1000, 7)
			h, _, err := s.Put(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			path := s.dataPath(h)
			if tc.outboard {
				path = s.outboardPath(h)
			}
			flipByte(t, path, tc.at)
			r, err := s.Open(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			_, err = io.ReadAll(r)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading corrupted blob: err = %v; want ErrCorrupt", err)
			}
			if !tc.outboard && tc.at >= window {
				// the windows before the damage are intact and readable
				if _, err := r.Seek(0, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				b := make([]byte, window)
				if _, err := io.ReadFull(r, b); err != nil || !bytes.Equal(b, data[:window]) {
					t.Fatalf("first window: %v", err)
				}
			}
		})
	}
}

func TestTruncatedDetected(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	h, _, err := s.Put(ctx, bytes.NewReader(randBytes(100000, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(s.dataPath(h), 99999); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, h); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a truncated blob: err = %v; want ErrCorrupt", err)
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestSeekAndRanges(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := randBytes(2*window+12345, 3)
	h, _, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, off := range []int64{0, 1, GroupSize, window - 1, window + 17, int64(len(data)) - 1} {
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, min(5000, int64(len(data))-off))
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(b, data[off:off+int64(len(b))]) {
			t.Fatalf("bytes at %d differ", off)
		}
	}
}

// TestSliceRoundTrip sends ranges of a blob as Bao slices and verifies them
// on the receiving side; a flipped byte in transit is rejected.
func TestSliceRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := randBytes(5*GroupSize+321, 9)
	h, _, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ranges := [][2]int64{{0, int64(len(data))}, {0, 1}, {GroupSize - 1, 2}, {3*GroupSize + 5, 1000}, {int64(len(data)) - 10, 10}, {100, 0}}
	for _, rg := range ranges {
		r, err := s.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		var enc bytes.Buffer
		if err := r.WriteSlice(&enc, rg[0], rg[1]); err != nil {
			t.Fatalf("WriteSlice %v: %v", rg, err)
		}
		r.Close()
		var out bytes.Buffer
		size, err := DecodeSlice(&out, bytes.NewReader(enc.Bytes()), h, rg[0], rg[1])
		if err != nil || size != int64(len(data)) {
			t.Fatalf("DecodeSlice %v: size %d, %v", rg, size, err)
		}
		if !bytes.Equal(out.Bytes(), data[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("range %v: bytes differ", rg)
		}
		if rg[1] == 0 {
			continue
		}
		tampered := bytes.Clone(enc.Bytes())
		tampered[len(tampered)-1] ^= 0x80
		if _, err := DecodeSlice(io.Discard, bytes.NewReader(tampered), h, rg[0], rg[1]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("range %v tampered: err = %v; want ErrCorrupt", rg, err)
		}
	}
}

// zeroReader yields n zero bytes without holding them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	m := int(min(int64(len(b)), p.n-p.off))
	for i := range m {
		b[i] = byte((p.off + int64(i)) * 7)
	}
	p.off += int64(m)
	return m, nil
}

// TestLargeStreaming puts and reads back 50 MB and checks that the heap did
// not grow by anything like the blob's size.
func TestLargeStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB on disk")
	}
	ctx := context.Background()
	s := newStore(t)
	const n = 50 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h, size, err := s.Put(ctx, &patternReader{n: n})
	if err != nil || size != n {
		t.Fatalf("Put = %d, %v", size, err)
	}
	r, err := s.Open(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	want := &patternReader{n: n}
	got, wb := make([]byte, 64<<10), make([]byte, 64<<10)
	var total int64
	for {
		m, err := io.ReadFull(r, got)
		if m > 0 {
			if _, err := io.ReadFull(want, wb[:m]); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:m], wb[:m]) {
				t.Fatalf("bytes differ near %d", total)
			}
			total += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	runtime.ReadMemStats(&after)
	if total != n {
		t.Fatalf("read %d bytes; want %d", total, n)
	}
	// TotalAlloc counts every allocation, freed or not: streaming allocates
	// buffers and the outboard (0.4% of the size), never the blob.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > n/4 {
		t.Fatalf("allocated %d bytes for a %d-byte blob; want well under its size", grew, n)
	}
}
