package node

import (
	"bytes"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/consensus"
	"github.com/aspen-dev/aspen/internal/kv"
)

// metrics is the node's private Prometheus registry.
type metrics struct {
	reg      *prometheus.Registry
	rpcCount *prometheus.CounterVec
	rpcTime  *prometheus.HistogramVec
	commit   prometheus.Histogram
	apply    prometheus.Histogram
	batch    prometheus.Histogram
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		rpcCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aspen_rpc_requests_total", Help: "Client RPC calls served, by operation and error code (empty = success).",
		}, []string{"op", "code"}),
		rpcTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aspen_rpc_duration_seconds", Help: "Time to serve a client RPC call.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"op"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aspen_raft_commit_duration_seconds", Help: "Time from proposing a command on the leader to its apply.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aspen_fsm_apply_batch_duration_seconds", Help: "Time to apply one batch of log entries to the state machine (one bbolt transaction).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aspen_fsm_apply_batch_entries", Help: "Log entries per state machine batch (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	raftStat := func(pick func(consensus.Metrics) uint64) func() float64 {
		return func() float64 { return float64(pick(n.raft.Metrics())) }
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.rpcCount, m.rpcTime, m.commit, m.apply, m.batch,
		gauge("aspen_raft_is_leader", "1 when this node is the Raft leader.", func() float64 {
			if n.raft.IsLeader() {
				return 1
			}
			return 0
		}),
		gauge("aspen_raft_term", "Current Raft term.", raftStat(func(r consensus.Metrics) uint64 { return r.Term })),
		gauge("aspen_raft_leader_id", "Node ID of the known leader (0 = none).", raftStat(func(r consensus.Metrics) uint64 { return r.Leader })),
		gauge("aspen_raft_last_log_index", "Index of the last Raft log entry.", raftStat(func(r consensus.Metrics) uint64 { return r.LastLogIndex })),
		gauge("aspen_raft_commit_index", "Raft commit index.", raftStat(func(r consensus.Metrics) uint64 { return r.CommitIndex })),
		gauge("aspen_raft_applied_index", "Last index applied to the state machine.", raftStat(func(r consensus.Metrics) uint64 { return r.AppliedIndex })),
		gauge("aspen_raft_snapshot_index", "Index of the last snapshot.", raftStat(func(r consensus.Metrics) uint64 { return r.SnapshotIndex })),
		gauge("aspen_uptime_seconds", "Seconds since the node started.", func() float64 { return time.Since(n.started).Seconds() }),
	)
	return m
}

func (m *metrics) observeRPC(op string, code api.Code, d time.Duration) {
	m.rpcCount.WithLabelValues(op, string(code)).Inc()
	m.rpcTime.WithLabelValues(op).Observe(d.Seconds())
}

// text renders the registry in Prometheus text exposition format.
func (m *metrics) text() (string, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return "", fmt.Errorf("gathering metrics: %w", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return "", fmt.Errorf("encoding metrics: %w", err)
		}
	}
	return buf.String(), nil
}

// timedFSM is the state machine with its batch applies measured.
type timedFSM struct {
	*kv.Store
	m *metrics
}

func (f timedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	start := time.Now()
	out := f.Store.ApplyBatch(logs)
	f.m.apply.Observe(time.Since(start).Seconds())
	f.m.batch.Observe(float64(len(logs)))
	return out
}
