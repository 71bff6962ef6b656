package main

import (
	"github.com/aspen-dev/aspen/internal/bench"
)

// spec is one workload run against each system.
type spec struct {
	name string
	cfg  bench.Config
}

// specs are the workloads of the comparison; every field not set here is
// bench.DefaultConfig's (100-byte values, 10000 keys).
func specs() []spec {
	w := func(name string, wl bench.Workload, clients int, stale bool) spec {
		cfg := bench.DefaultConfig()
		cfg.Workload, cfg.Clients, cfg.Stale = wl, clients, stale
		cfg.Connections = connectionsFor(clients)
		return spec{name: name, cfg: cfg}
	}
	return []spec{
		w("put1", bench.Put, 1, false),
		w("put16", bench.Put, 16, false),
		w("put256", bench.Put, 256, false),
		w("getlin64", bench.Get, 64, false),
		w("getstale64", bench.Get, 64, true),
		w("cas16", bench.CAS, 16, false),
		w("batch16", bench.Batch, 16, false),
	}
}

// connectionsFor is the number of client connections both systems get for
// a number of clients: one per 8 clients, between 1 and 8.
func connectionsFor(clients int) int { return min(max((clients+7)/8, 1), 8) }

// rowDef turns the results of one spec into one table row.
type rowDef struct {
	label  string
	spec   string
	unit   string
	lower  bool // lower is better (latency)
	figure func(*bench.Result) float64
}

func throughput(r *bench.Result) float64 { return r.Throughput }
func p50(r *bench.Result) float64        { return r.Latency.P50 }
func p99(r *bench.Result) float64        { return r.Latency.P99 }

var rowDefs = []rowDef{
	{"put, 1 client (sequential): p50 latency", "put1", "ms", true, p50},
	{"put, 16 clients: throughput", "put16", "ops/s", false, throughput},
	{"put, 16 clients: p99 latency", "put16", "ms", true, p99},
	{"put, 256 clients: throughput", "put256", "ops/s", false, throughput},
	{"put, 256 clients: p99 latency", "put256", "ms", true, p99},
	{"get linearizable, 64 clients: throughput", "getlin64", "ops/s", false, throughput},
	{"get stale, 64 clients: throughput", "getstale64", "ops/s", false, throughput},
	{"cas one hot key, 16 clients: attempts", "cas16", "ops/s", false, throughput},
	{"cas one hot key, 16 clients: successful swaps", "cas16", "ops/s", false, func(r *bench.Result) float64 {
		if r.ElapsedS == 0 {
			return 0
		}
		return float64(r.Ops-r.Conflicts) / r.ElapsedS
	}},
	{"batch of 100 keys, 16 clients: keys written", "batch16", "keys/s", false, func(r *bench.Result) float64 { return r.KeysPerSec }},
}

// row is one line of the comparison table and of --json.
type row struct {
	Row   string  `json:"row"`
	Aspen float64 `json:"aspen"`
	Etcd  float64 `json:"etcd"`
	Unit  string  `json:"unit"`
	// Ratio > 1 means Aspen is better: aspen/etcd for rates, etcd/aspen for
	// latencies; 0 when a figure is missing.
	Ratio float64 `json:"ratio"`
}

// makeRow computes a row from both systems' results of its spec.
func makeRow(prefix string, d rowDef, aspen, etcd *bench.Result) row {
	r := row{Row: prefix + d.label, Unit: d.unit}
	if aspen != nil {
		r.Aspen = d.figure(aspen)
	}
	if etcd != nil {
		r.Etcd = d.figure(etcd)
	}
	switch {
	case r.Aspen == 0 || r.Etcd == 0:
	case d.lower:
		r.Ratio = r.Etcd / r.Aspen
	default:
		r.Ratio = r.Aspen / r.Etcd
	}
	return r
}
