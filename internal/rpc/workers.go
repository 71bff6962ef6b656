package rpc

import (
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long a stream worker waits for the next stream before
// it exits.
const workerIdle = 5 * time.Second

// workers runs the calls of accepted streams on goroutines that outlive one
// call. A new goroutine starts with a small stack that decoding its first
// request grows and copies (7% of a node's CPU at 256 concurrent clients);
// a worker keeps its grown stack for the calls after. There is no bound:
// when no worker is idle a new one starts, as a goroutine per stream did.
// The zero value is ready to use.
type workers struct {
	once    sync.Once
	work    chan func()
	started atomic.Int64 // goroutines started, for tests
}

// run runs f on an idle worker or a new one.
func (w *workers) run(f func()) {
	w.once.Do(func() { w.work = make(chan func()) })
	select {
	case w.work <- f:
	default:
		w.started.Add(1)
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.work:
		case <-idle.C:
			return
		}
	}
}
