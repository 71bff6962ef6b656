package rpc

import (
	"sync"
	"testing"
	"time"
)

func TestWorkersReuseAndConcurrency(t *testing.T) {
	var w workers
	// calls one after the other share one goroutine
	for range 50 {
		done := make(chan struct{})
		w.run(func() { close(done) })
		<-done
		time.Sleep(time.Millisecond) // the worker goes back to waiting for work
	}
	// one goroutine, give or take one that was not back in time
	if n := w.started.Load(); n > 3 {
		t.Errorf("50 sequential calls started %d goroutines; want them to reuse one", n)
	}
	// calls that block each other run at once, on as many goroutines
	var wg sync.WaitGroup
	release := make(chan struct{})
	var mu sync.Mutex
	running := 0
	for range 8 {
		wg.Add(1)
		w.run(func() {
			defer wg.Done()
			mu.Lock()
			running++
			mu.Unlock()
			<-release
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		r := running
		mu.Unlock()
		if r == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 8 blocked calls running; want all 8 at once", r)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
}
