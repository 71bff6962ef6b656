package node_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// benchBlobSize is the blob moved by each operation of the blob benchmarks.
const benchBlobSize = 64 << 20

// benchBlobs returns a function that makes the i-th distinct blob of
// benchBlobSize bytes from one random buffer (its first 8 bytes are i).
func benchBlobs() func(i int) []byte {
	buf := randomBlob(11, benchBlobSize)
	return func(i int) []byte {
		binary.LittleEndian.PutUint64(buf, uint64(i))
		return buf
	}
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

// BenchmarkBlobAddLocal is a client adding distinct 64 MiB blobs to one
// node over QUIC on loopback: sent, hashed, written, outboard computed,
// fsynced and recorded through Raft.
func BenchmarkBlobAddLocal(b *testing.B) {
	c := clustertest.New(b, 1, clustertest.Options{})
	cl, blobs, ctx := c.Client(1), benchBlobs(), benchCtx(b)
	b.SetBytes(benchBlobSize)
	i := 0
	for b.Loop() {
		i++
		if _, err := cl.BlobAdd(ctx, bytes.NewReader(blobs(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlobGetLocal is a client reading a 64 MiB blob the node holds:
// read and verified from disk by the node, Bao-encoded, sent over QUIC on
// loopback and verified again by the client.
func BenchmarkBlobGetLocal(b *testing.B) {
	c := clustertest.New(b, 1, clustertest.Options{})
	cl, ctx := c.Client(1), benchCtx(b)
	res, err := cl.BlobAdd(ctx, bytes.NewReader(benchBlobs()(0)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBlobSize)
	for b.Loop() {
		if _, err := cl.BlobGet(ctx, res.Hash, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlobFetchFromPeer is a client reading, through node 2, a 64
// MiB blob only node 1 holds: node 2 pulls it from node 1 (Bao-verified,
// written, fsynced, recorded through Raft), then serves it to the client.
// Each operation reads a new blob (added to node 1 untimed); replication
// is off (factor 1) so node 2 never has it beforehand.
func BenchmarkBlobFetchFromPeer(b *testing.B) {
	c := clustertest.New(b, 2, clustertest.Options{})
	ctx := benchCtx(b)
	c1, c2, blobs := c.Client(1), c.Client(2), benchBlobs()
	if _, err := c1.BlobPolicy(ctx, &api.BlobPolicyRequest{Set: true, Policy: api.BlobPolicy{ReplicationFactor: 1, MinReplicas: 1}}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBlobSize)
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		res, err := c1.BlobAdd(ctx, bytes.NewReader(blobs(i)))
		if err != nil {
			b.Fatal(err)
		}
		// a linearizable read through node 2: it has applied the record
		if has, err := c2.BlobHas(ctx, res.Hash); err != nil || !has.DoesExist {
			b.Fatalf("BlobHas on node 2 = %+v, %v", has, err)
		}
		b.StartTimer()
		if _, err := c2.BlobGet(ctx, res.Hash, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
