// Command aspen-chaos runs a fault-injection campaign against an in-process
// cluster of real Aspen nodes (QUIC on loopback, storage in a temporary
// directory): concurrent clients on every node run a get/put/CAS/delete
// register workload and atomic adds to one counter while the chosen nemeses
// cycle; then the register history is checked for linearizability with
// porcupine and the counter for lost or doubly applied adds.
//
//	go run ./cmd/aspen-chaos --nodes 5 --duration 2m --nemesis all --seed 1
//
// With --process it builds aspen-node and runs real processes on loopback
// instead, under process nemeses (kill -9 of the leader, of a random member
// and of the whole cluster, SIGSTOP of the leader past the election
// timeout):
//
//	go run ./cmd/aspen-chaos --process --nodes 3 --duration 3m --nemesis all
//
// Beside the register and counter workloads, --timed clients write TTL keys
// and take a lock with fencing tokens; a key read back after it was seen
// expired, a fencing token out of order, two overlapping holders or a lock
// deadline going backwards is a violation.
//
// It prints one line per fault, periodic operation counts and the verdict.
// Exit status: 0 all checks passed, 1 a violation (porcupine's HTML and the
// seed are written to --out), 2 bad usage or the harness failed, 3 the
// linearizability check did not finish within --check-timeout.
package main

import (
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
