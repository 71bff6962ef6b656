package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/blob"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// TestBlobStoreAPI: a service on node 1 puts a blob through the Go API; a
// service on node 3, which lacks it, opens it (fetched from node 1 and
// verified), seeks and reads a range; Stat on node 2 reports its size, tag
// and holders.
func TestBlobStoreAPI(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	setPolicy(t, c.Client(), api.BlobPolicy{ReplicationFactor: 1, MinReplicas: 1})
	data := randomBlob(12, 2<<20+7)
	res, err := c.Members[0].Node.Blobs().Put(ctxT(t), bytes.NewReader(data), "kv:some/key")
	if err != nil || !res.New || res.Size != int64(len(data)) || res.Hash != blob.Sum(data) {
		t.Fatalf("Put = %+v, %v", res, err)
	}
	if _, err := os.Stat(blobFile(c, 3, res.Hash.String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("node 3 holds the blob before any read (%v); want it to fetch", err)
	}

	r, err := c.Members[2].Node.Blobs().Open(ctxT(t), res.Hash)
	if err != nil {
		t.Fatalf("Open on node 3: %v", err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading on node 3: %v (bytes equal %v)", err, bytes.Equal(got, data))
	}
	const off = 1<<20 + 5
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 100)
	if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, data[off:off+100]) {
		t.Fatalf("range read at %d: %v", off, err)
	}

	st, err := c.Members[1].Node.Blobs().Stat(ctxT(t), res.Hash)
	if err != nil || !st.WasFound || st.SizeBytes != int64(len(data)) || !slices.Equal(st.Tags, []string{"kv:some/key"}) ||
		!slices.Contains(st.ReplicaNodes, 1) || !slices.Contains(st.ReplicaNodes, 3) {
		t.Fatalf("Stat on node 2 = %+v, %v; want size %d, tag kv:some/key, holders 1 and 3", st, err, len(data))
	}

	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Members[2].Node.Blobs().Open(ctx, blob.Sum([]byte("unknown"))); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(unknown) err = %v; want ErrNotFound", err)
	}
}
