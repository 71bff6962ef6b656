package node

import (
	"context"
	"io"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/blob"
)

// BlobStore is the cluster's blob store as the services running in this
// process use it (issue 7's Go API): content-addressed bytes stored on
// this node, recorded in the cluster and replicated after Put, fetched
// from a holder when missing here. Every method may block on the network
// and on Raft; all are safe for concurrent use.
type BlobStore struct{ b *blobService }

// Blobs returns the node's blob store.
func (n *Node) Blobs() *BlobStore { return &BlobStore{b: n.blobs} }

// Put streams the content of r into this node's store, records the blob
// and this replica in the cluster with tags (full names such as
// "user:keep" or "kv:KEY"), and queues its replication, like a client's
// add. Content longer than the size limit fails with blob.ErrTooLarge.
func (s *BlobStore) Put(ctx context.Context, r io.Reader, tags ...string) (blob.PutResult, error) {
	res, err := s.b.store.PutExpect(ctx, r, nil)
	if err != nil {
		return res, err
	}
	if err := s.b.stored(ctx, res, tags); err != nil {
		return res, err
	}
	s.b.added(res)
	return res, nil
}

// Open returns a reader of blob h that verifies every 16 KiB group before
// returning it. When this node lacks the blob it first fetches it from a
// holder (waiting up to 5 s for one to be known) and keeps the copy; a
// corrupt local copy is replaced first. An unknown blob fails with
// blob.ErrNotFound.
func (s *BlobStore) Open(ctx context.Context, h blob.Hash) (io.ReadSeekCloser, error) {
	r, err := s.b.store.OpenOr(ctx, h, blob.Recovery{Fetch: s.b.fetch, Replace: s.b.corrupt})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Stat describes blob h as the cluster records it (linearizable): size,
// tags and holders; WasFound is false for an unknown blob.
func (s *BlobStore) Stat(ctx context.Context, h blob.Hash) (*api.BlobStatusResponse, error) {
	return s.b.clusterStatus(ctx, h)
}
