package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/aspen-dev/aspen/internal/chaos"
)

// result is the --json output.
type result struct {
	Verdict    string   `json:"verdict"` // PASS, FAIL or INCONCLUSIVE
	Error      string   `json:"error,omitempty"`
	Seed       uint64   `json:"seed"`
	Mode       string   `json:"mode"` // in-process or process
	Nodes      int      `json:"nodes"`
	Nemeses    string   `json:"nemeses"`
	ElapsedSec float64  `json:"elapsed_seconds"`
	Faults     []string `json:"faults"`
	Register   struct {
		Ops            int    `json:"ops"`
		OK             int    `json:"ok"`
		Unknown        int    `json:"unknown"`
		Failed         int    `json:"failed"`
		Linearizable   string `json:"linearizable"` // Ok, Illegal or Unknown
		CheckMillisecs int64  `json:"check_ms"`
	} `json:"register"`
	Counter struct {
		Acked   int64 `json:"acked"`
		Unknown int64 `json:"unknown"`
		Refused int64 `json:"refused"`
		Final   int64 `json:"final"`
	} `json:"counter"`
	Timed chaos.TimedReport `json:"timed"`
}

// writeJSON prints the campaign's outcome as one JSON object.
func writeJSON(w io.Writer, o *options, mode string, elapsed time.Duration, rep chaos.Report, verdict string, err error) error {
	r := result{Verdict: verdict, Seed: o.seed, Mode: mode, Nodes: o.nodes, Nemeses: o.nemesis,
		ElapsedSec: elapsed.Seconds(), Faults: rep.Faults, Timed: rep.Timed}
	if err != nil {
		r.Error = err.Error()
	}
	if r.Faults == nil {
		r.Faults = []string{}
	}
	r.Register.Ops, r.Register.OK, r.Register.Unknown, r.Register.Failed = rep.Lin.Ops, rep.Lin.Counts.OK, rep.Lin.Counts.Unknown, rep.Lin.Counts.Failed
	r.Register.Linearizable, r.Register.CheckMillisecs = string(rep.Lin.Verdict), rep.Lin.Elapsed.Milliseconds()
	r.Counter.Acked, r.Counter.Unknown, r.Counter.Refused, r.Counter.Final = rep.Acked, rep.Unknown, rep.Refused, rep.Final
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
