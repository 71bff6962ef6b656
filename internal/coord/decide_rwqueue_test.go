package coord

import (
	"fmt"
	"strings"
	"testing"
)

func TestDecideRWLock(t *testing.T) {
	const now = 1000
	readers := &rwRecord{FencingToken: 3, Readers: []rwHolder{{"r1", now + 10}, {"r2", now + 10}}}
	writer := &rwRecord{FencingToken: 3, Writer: "w", WriterDeadlineMs: now + 10, WriterTTLMs: 10, Readers: []rwHolder{}}
	waiting := &rwRecord{FencingToken: 3, Readers: []rwHolder{{"r1", now + 10}}, Pending: []rwHolder{{"w", now + 5}}}
	expired := &rwRecord{FencingToken: 3, Writer: "w", WriterDeadlineMs: now, Readers: []rwHolder{{"r1", now}}}

	t.Run("read", func(t *testing.T) {
		tests := []struct {
			name   string
			cur    *rwRecord
			holder string
			wantOK bool
			want   string
		}{
			{"new", nil, "r", true, ""},
			{"with readers", readers, "r3", true, ""},
			{"writer holds", writer, "r", false, "write-locked by w"},
			{"writer waits", waiting, "r2", false, "a writer is waiting"},
			{"existing reader refreshes while a writer waits", waiting, "r1", true, ""},
			{"expired writer", expired, "r", true, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				next, resp := decideRWRead(tt.cur, tt.holder, 100, now)
				if resp.IsSuccess != tt.wantOK || !strings.Contains(resp.Error, tt.want) || (next != nil) != tt.wantOK {
					t.Fatalf("got ok=%v err=%q next=%v, want ok=%v err~%q", resp.IsSuccess, resp.Error, next, tt.wantOK, tt.want)
				}
			})
		}
	})
	t.Run("write", func(t *testing.T) {
		tests := []struct {
			name      string
			cur       *rwRecord
			wait      bool
			wantOK    bool
			wantToken uint64
			wantWrite bool // a record is written
		}{
			{"new", nil, false, true, 1, true},
			{"readers, try", readers, false, false, 3, false},
			{"readers, waiting", readers, true, false, 3, true},
			{"writer", writer, false, false, 3, false},
			{"expired", expired, false, true, 4, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				next, resp := decideRWWrite(tt.cur, "x", 100, tt.wait, now)
				if resp.IsSuccess != tt.wantOK || resp.FencingToken != tt.wantToken || (next != nil) != tt.wantWrite {
					t.Fatalf("got ok=%v token=%d next=%v", resp.IsSuccess, resp.FencingToken, next)
				}
				if tt.wait && (next == nil || indexOf(next.Pending, "x") < 0) {
					t.Errorf("waiting writer not recorded: %+v", next)
				}
			})
		}
	})
	t.Run("downgrade keeps the token", func(t *testing.T) {
		next, resp := decideRWDowngrade(writer, "w", 3, 0, now)
		if !resp.IsSuccess || resp.Mode != "read" || resp.FencingToken != 3 || next.WriterDeadlineMs != 0 || indexOf(next.Readers, "w") < 0 {
			t.Fatalf("got %+v, %+v", resp, next)
		}
		if _, resp := decideRWDowngrade(writer, "w", 2, 0, now); resp.IsSuccess {
			t.Errorf("downgrade with a stale token succeeded")
		}
		if _, resp := decideRWRead(next, "r", 100, now); !resp.IsSuccess {
			t.Errorf("reader refused after downgrade: %s", resp.Error)
		}
	})
}

func TestDequeuePlan(t *testing.T) {
	const now = 1000
	item := func(id uint64, group string) queueCandidate {
		return queueCandidate{id: id, item: &queueItem{Payload: []byte("p"), Group: group}, itemRev: id}
	}
	pending := func(c queueCandidate, attempts int64) queueCandidate {
		c.state = &queueDelivery{DeadlineMs: now + 1, Attempts: attempts, Group: c.item.Group}
		return c
	}
	visibleAgain := func(c queueCandidate, attempts int64) queueCandidate {
		c.state = &queueDelivery{DeadlineMs: now, Attempts: attempts, Group: c.item.Group}
		return c
	}
	expiredTTL := item(9, "")
	expiredTTL.item.ExpiresAtMs = now

	tests := []struct {
		name                  string
		cands                 []queueCandidate
		max                   int
		wantDeliver, wantDrop []uint64
		wantDead              []uint64
	}{
		{"fifo", []queueCandidate{item(1, ""), item(2, ""), item(3, "")}, 2, []uint64{1, 2}, nil, nil},
		{"pending skipped", []queueCandidate{pending(item(1, ""), 1), item(2, "")}, 5, []uint64{2}, nil, nil},
		{"redelivery after timeout", []queueCandidate{visibleAgain(item(1, ""), 1)}, 1, []uint64{1}, nil, nil},
		{"one in flight per group", []queueCandidate{pending(item(1, "g"), 1), item(2, "g"), item(3, "h"), item(4, "h")}, 5, []uint64{3}, nil, nil},
		{"out of attempts to dlq", []queueCandidate{visibleAgain(item(1, ""), 3), item(2, "")}, 1, []uint64{2}, nil, []uint64{1}},
		{"ttl dropped", []queueCandidate{expiredTTL, item(10, "")}, 1, []uint64{10}, []uint64{9}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var states []*queueDelivery
			for _, c := range tt.cands {
				if c.state != nil {
					states = append(states, c.state)
				}
			}
			p := newDequeuePlan(queueMeta{VisibilityTimeoutMs: 100, MaxAttempts: 3}, states, now)
			p.max, p.visMs, p.consumer = tt.max, 100, "c"
			p.receiptFn = func(id uint64, a int64) string { return fmt.Sprintf("%d.%d", id, a) }
			for _, c := range tt.cands {
				p.consider(c)
			}
			ids := func(cs []queueCandidate) string {
				var out []uint64
				for _, c := range cs {
					out = append(out, c.id)
				}
				return fmt.Sprint(out)
			}
			if got, want := ids(p.deliver), fmt.Sprint(tt.wantDeliver); got != want && !(len(p.deliver) == 0 && len(tt.wantDeliver) == 0) {
				t.Errorf("deliver %s, want %s", got, want)
			}
			if got, want := ids(p.drop), fmt.Sprint(tt.wantDrop); got != want && !(len(p.drop) == 0 && len(tt.wantDrop) == 0) {
				t.Errorf("drop %s, want %s", got, want)
			}
			if got, want := ids(p.dead), fmt.Sprint(tt.wantDead); got != want && !(len(p.dead) == 0 && len(tt.wantDead) == 0) {
				t.Errorf("dead %s, want %s", got, want)
			}
			for i, st := range p.states {
				var prev int64
				if s := p.deliver[i].state; s != nil {
					prev = s.Attempts
				}
				if st.Attempts != prev+1 || st.DeadlineMs != now+100 || st.Receipt == "" {
					t.Errorf("state %+v", st)
				}
			}
		})
	}
}

func TestDecideNack(t *testing.T) {
	m := queueMeta{MaxAttempts: 3}
	for _, tt := range []struct {
		attempts int64
		toDLQ    bool
		max      int64
		want     bool
	}{{1, false, 3, false}, {1, true, 3, true}, {3, false, 3, true}, {9, false, 0, false}} {
		m.MaxAttempts = tt.max
		if got := decideNack(&queueDelivery{Attempts: tt.attempts}, m, tt.toDLQ); got != tt.want {
			t.Errorf("decideNack(attempts %d, to_dlq %v, max %d) = %v, want %v", tt.attempts, tt.toDLQ, tt.max, got, tt.want)
		}
	}
}
