package node_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// blobFile is the path of blob hash on member i's disk.
func blobFile(c *clustertest.Cluster, i int, hash string) string {
	return filepath.Join(c.Members[i-1].Dir, "blobs", hash[:2], hash)
}

func randomBlob(seed byte, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func setPolicy(t *testing.T, cl *client.Client, p api.BlobPolicy) {
	t.Helper()
	if _, err := cl.BlobPolicy(ctxT(t), &api.BlobPolicyRequest{Set: true, Policy: p}); err != nil {
		t.Fatalf("BlobPolicy(set %+v): %v", p, err)
	}
}

func addBlob(t *testing.T, cl *client.Client, data []byte, tags ...string) string {
	t.Helper()
	res, err := cl.BlobAdd(ctxT(t), bytes.NewReader(data), tags...)
	if err != nil || !res.IsSuccess {
		t.Fatalf("BlobAdd = %+v, %v", res, err)
	}
	return res.Hash
}

// TestBlobReplicatesAfterAdd: with the default factor min(3, 3 voters) a
// blob added on node 1 is pushed to nodes 2 and 3 without any read.
func TestBlobReplicatesAfterAdd(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	cl := c.Client(1)
	data := randomBlob(2, 1<<20+5)
	h := addBlob(t, cl, data)
	c.Eventually(15*time.Second, func() error {
		st, err := cl.BlobReplicationStatus(ctxT(t), h)
		if err != nil {
			return err
		}
		if st.Status != api.BlobHealthy || len(st.ReplicaNodes) != 3 || st.ReplicationFactor != 3 {
			return fmt.Errorf("replication status %+v; want healthy on 3 nodes", st)
		}
		return nil
	})
	for i := 1; i <= 3; i++ {
		got, err := os.ReadFile(blobFile(c, i, h))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("node %d: blob file: %v (equal %v)", i, err, bytes.Equal(got, data))
		}
	}
	st, err := cl.BlobReplicationStatus(ctxT(t), "0000000000000000000000000000000000000000000000000000000000000000")
	if err != nil || st.WasFound || st.Status != api.BlobCritical || st.ReplicasNeeded != 3 {
		t.Fatalf("status of an unknown blob = %+v, %v; want not found, critical", st, err)
	}
}

// TestBlobRepairAfterHolderLost: factor 2 on 3 nodes; the non-leader holder
// is stopped and the leader's repair loop copies the blob to the third node.
func TestBlobRepairAfterHolderLost(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	leader := int(c.WaitLeader().ID)
	cl := c.Client()
	setPolicy(t, cl, api.BlobPolicy{ReplicationFactor: 2, RepairIntervalMs: 300})
	data := randomBlob(3, 200<<10)
	h := addBlob(t, c.Client(leader), data)
	var holders []uint64
	c.Eventually(15*time.Second, func() error {
		st, err := cl.BlobReplicationStatus(ctxT(t), h)
		if err != nil {
			return err
		}
		if st.Status != api.BlobHealthy || len(st.ReplicaNodes) != 2 {
			return fmt.Errorf("replication status %+v; want healthy on 2 nodes", st)
		}
		holders = st.ReplicaNodes
		return nil
	})
	lost := int(holders[0])
	if lost == leader {
		lost = int(holders[1])
	}
	third := 6 - leader - lost
	c.Stop(lost)
	alive := []int{1, 2, 3}
	alive = slices.DeleteFunc(alive, func(i int) bool { return i == lost })
	cl2 := c.Client(alive...)
	c.Eventually(20*time.Second, func() error {
		got, err := os.ReadFile(blobFile(c, third, h))
		if err != nil || !bytes.Equal(got, data) {
			return fmt.Errorf("node %d has no good copy yet (%v)", third, err)
		}
		st, err := cl2.BlobReplicationStatus(ctxT(t), h)
		if err != nil {
			return err
		}
		if !slices.Contains(st.ReplicaNodes, uint64(third)) {
			return fmt.Errorf("replicas %v lack node %d", st.ReplicaNodes, third)
		}
		return nil
	})
	// a manual repair with nothing to do copies nowhere
	res, err := cl2.BlobRepair(ctxT(t), &api.BlobRepairRequest{Hash: h})
	if err != nil || len(res.SuccessfulNodes) != 0 {
		t.Fatalf("BlobRepair = %+v, %v; want nothing to do", res, err)
	}
	if _, err := cl2.BlobRepairCycle(ctxT(t)); err != nil {
		t.Fatalf("BlobRepairCycle: %v", err)
	}
}

// TestBlobCorruptCopyRefetched flips a byte of node 1's copy; the next get
// through node 1 still returns the right bytes, and node 1's file is
// replaced by a good copy fetched from another holder.
func TestBlobCorruptCopyRefetched(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	cl := c.Client(1)
	data := randomBlob(4, 700<<10+3)
	h := addBlob(t, cl, data)
	c.Eventually(15*time.Second, func() error {
		st, err := cl.BlobReplicationStatus(ctxT(t), h)
		if err != nil || len(st.ReplicaNodes) != 3 {
			return fmt.Errorf("replicas %+v, %v", st, err)
		}
		return nil
	})
	path := blobFile(c, 1, h)
	bad := bytes.Clone(data)
	bad[300<<10] ^= 0x40
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, err := cl.BlobGet(ctxT(t), h, &out)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("BlobGet after corruption = %d, %v (equal %v)", n, err, bytes.Equal(out.Bytes(), data))
	}
	c.Eventually(10*time.Second, func() error {
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			return fmt.Errorf("node 1's copy not replaced yet (%v)", err)
		}
		return nil
	})
}

// TestBlobGC: with a short grace period an untagged blob disappears from
// the cluster and every disk; a tagged one stays.
func TestBlobGC(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	cl := c.Client()
	setPolicy(t, cl, api.BlobPolicy{GCIntervalMs: 200, GCGraceMs: 1500})
	loose := addBlob(t, cl, []byte("collect me"))
	kept := addBlob(t, cl, []byte("keep me"), "user:keep")
	c.Eventually(20*time.Second, func() error {
		has, err := cl.BlobHas(context.Background(), loose)
		if err != nil || has.DoesExist {
			return fmt.Errorf("untagged blob still known: %+v, %v", has, err)
		}
		for i := 1; i <= 3; i++ {
			if _, err := os.Stat(blobFile(c, i, loose)); err == nil {
				return fmt.Errorf("node %d still has the untagged blob's file", i)
			}
		}
		return nil
	})
	has, err := cl.BlobHas(ctxT(t), kept)
	if err != nil || !has.DoesExist {
		t.Fatalf("tagged blob: has = %+v, %v; want kept", has, err)
	}
	var out bytes.Buffer
	if _, err := cl.BlobGet(ctxT(t), kept, &out); err != nil || out.String() != "keep me" {
		t.Fatalf("tagged blob: get = %q, %v", out.String(), err)
	}
	if _, err := os.Stat(blobFile(c, 1, kept)); err != nil {
		t.Fatalf("tagged blob's file on node 1: %v", err)
	}
}

// TestBlobLostFileRefetchedOnRestart: a node that comes back without a
// blob the cluster records as held there fetches it again by itself.
func TestBlobLostFileRefetchedOnRestart(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	cl := c.Client()
	setPolicy(t, cl, api.BlobPolicy{RepairIntervalMs: 300})
	data := randomBlob(6, 64<<10)
	h := addBlob(t, cl, data)
	path := blobFile(c, 3, h)
	c.Eventually(15*time.Second, func() error {
		_, err := os.Stat(path)
		return err
	})
	c.Stop(3)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c.Start(3)
	c.Eventually(20*time.Second, func() error {
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			return fmt.Errorf("node 3 has not fetched the blob again (%v)", err)
		}
		return nil
	})
}
