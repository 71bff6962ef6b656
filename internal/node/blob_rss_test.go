package node_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/aspen-dev/aspen/internal/clustertest"
)

// rssBlobSize is the blob of TestBlobCLIRoundTripMemory; rssBudget is how
// much the node's resident memory may grow while it moves it (issue 7).
const (
	rssBlobSize = 200 << 20
	rssBudget   = 64 << 20
)

// TestBlobCLIRoundTripMemory builds aspen-node and aspen-cli, starts a
// one-node cluster as a separate process, and moves a 200 MiB blob through
// the CLI (blob add FILE, blob get HASH -o FILE). The bytes must come back
// identical, and the node's peak resident memory (VmHWM) must stay within
// rssBudget of its resident memory before the transfers: blobs are
// streamed, never held whole.
func TestBlobCLIRoundTripMemory(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Fatalf("this test reads /proc/PID/status (Linux): %v", err)
	}
	dir := t.TempDir()
	bin := buildBinaries(t, dir)

	data := filepath.Join(dir, "node")
	node := exec.Command(filepath.Join(bin, "aspen-node"), "--node-id", "1", "--cookie", "rss-test-cookie",
		"--data-dir", data, "--bind", "127.0.0.1:0", "--init")
	var nodeLog bytes.Buffer
	node.Stdout, node.Stderr = &nodeLog, &nodeLog
	if err := node.Start(); err != nil {
		t.Fatalf("starting aspen-node: %v", err)
	}
	t.Cleanup(func() {
		_ = node.Process.Kill()
		_ = node.Wait()
		if t.Failed() {
			t.Logf("aspen-node output:\n%s", nodeLog.String())
		}
	})
	ticketFile := filepath.Join(data, "cluster-ticket.txt")
	cli := func(args ...string) ([]byte, error) {
		tk, err := os.ReadFile(ticketFile)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(filepath.Join(bin, "aspen-cli"), append([]string{"--json"}, args...)...)
		cmd.Env = append(os.Environ(), "ASPEN_TICKET="+strings.TrimSpace(string(tk)), "ASPEN_DEV_DIR="+filepath.Join(dir, "dev"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("aspen-cli %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		_, err := cli("cluster", "health")
		return err
	})

	in := filepath.Join(dir, "in.bin")
	writeRandomFile(t, in, rssBlobSize)
	want := hashFile(t, in)
	before := procStatusKB(t, node.Process.Pid, "VmRSS")

	out, err := cli("blob", "add", in)
	if err != nil {
		t.Fatal(err)
	}
	var added struct {
		Hash      string `json:"hash"`
		SizeBytes int64  `json:"size_bytes"`
	}
	if err := json.Unmarshal(out, &added); err != nil || added.Hash != want || added.SizeBytes != rssBlobSize {
		t.Fatalf("blob add = %s (%v); want hash %s, %d bytes", out, err, want, rssBlobSize)
	}
	got := filepath.Join(dir, "out.bin")
	if _, err := cli("blob", "get", added.Hash, "-o", got); err != nil {
		t.Fatal(err)
	}
	if h := hashFile(t, got); h != want {
		t.Fatalf("blob get wrote content hashing to %s; want %s", h, want)
	}

	peak := procStatusKB(t, node.Process.Pid, "VmHWM")
	growth := (peak - before) << 10
	t.Logf("aspen-node VmRSS before %d KiB, VmHWM after add+get of %d MiB: %d KiB (growth %d KiB, budget %d KiB)",
		before, rssBlobSize>>20, peak, growth>>10, rssBudget>>10)
	if growth >= rssBudget {
		t.Fatalf("aspen-node peak memory grew by %d MiB moving a %d MiB blob; budget %d MiB", growth>>20, rssBlobSize>>20, rssBudget>>20)
	}
}

// buildBinaries builds aspen-node and aspen-cli into dir/bin.
func buildBinaries(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-o", bin+string(filepath.Separator),
		"github.com/aspen-dev/aspen/cmd/aspen-node", "github.com/aspen-dev/aspen/cmd/aspen-cli")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeRandomFile writes n bytes of a fixed ChaCha8 stream to path.
func writeRandomFile(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyBuffer(f, io.LimitReader(rand.NewChaCha8([32]byte{7}), n), make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// hashFile is the BLAKE3 hash of the file at path, in hex.
func hashFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := blake3.New(32, nil)
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// procStatusKB reads a "kB" field (VmRSS, VmHWM) of /proc/PID/status.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status %s: %v", pid, field, err)
		}
		return kb
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}
