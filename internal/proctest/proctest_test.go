package proctest_test

import (
	"context"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/proctest"
)

// TestPauseKillRestart: a leader stopped with SIGSTOP is replaced; after
// SIGCONT and a kill -9 of every process, the restarted cluster still has
// a write acknowledged before.
func TestPauseKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs aspen-node processes")
	}
	dir := t.TempDir()
	bin, err := proctest.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proctest.Start(proctest.Options{Nodes: 3, Bin: bin, Dir: dir, ElectionTimeoutMs: 500, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cl.Put(ctx, &api.PutRequest{Key: []byte("k"), Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}

	old := c.Leader()
	if old == 0 {
		t.Fatal("no leader")
	}
	if err := c.Pause(old); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if l := c.Leader(); l == old || l == 0 {
		t.Fatalf("leader %d while %d is paused", l, old)
	}
	if err := c.Resume(old); err != nil {
		t.Fatal(err)
	}

	for i := range c.Members {
		if err := c.Kill(i + 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.Members {
		if err := c.Restart(i + 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	r, err := cl.Get(ctx, &api.GetRequest{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	if r.KV == nil || string(r.KV.Value) != "before" {
		t.Fatalf("after kill -9 of every process: %+v; want k=before", r.KV)
	}
}
