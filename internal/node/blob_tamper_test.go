package node_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// flipWriter flips the byte at offset at of the stream written through it
// (the Bao slice encoding a node serves) and counts the streams it damaged.
type flipWriter struct {
	w        io.Writer
	at, n    int64
	tampered *atomic.Int64
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if f.n <= f.at && f.at < f.n+int64(len(p)) {
		p = bytes.Clone(p)
		p[f.at-f.n] ^= 0x40
		f.tampered.Add(1)
	}
	f.n += int64(len(p))
	return f.w.Write(p)
}

// TestBlobTamperedPeerRejected: node 1 flips one byte of every blob it
// serves. Node 3, lacking the blob, tries node 1 first: Bao verification
// rejects its bytes (counted in aspen_blob_fetch_rejected_total), and the
// fetch is retried from node 2 and succeeds. A client reading from node 1
// likewise rejects the stream and resumes from node 2.
func TestBlobTamperedPeerRejected(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	cl := c.Client()
	setPolicy(t, cl, api.BlobPolicy{ReplicationFactor: 2, MinReplicas: 1})
	data := randomBlob(9, 1<<20+123)
	h := addBlob(t, c.Client(1), data)
	c.Eventually(15*time.Second, func() error {
		st, err := cl.BlobStatus(ctxT(t), h)
		if err != nil {
			return err
		}
		if fmt.Sprint(st.ReplicaNodes) != "[1 2]" {
			return fmt.Errorf("replicas %v; want [1 2]", st.ReplicaNodes)
		}
		return nil
	})
	var tampered atomic.Int64
	c.Members[0].Node.SetBlobSendFilter(func(w io.Writer) io.Writer {
		return &flipWriter{w: w, at: 300_000, tampered: &tampered}
	})

	var out bytes.Buffer
	n, err := c.Client(3).BlobGet(ctxT(t), h, &out)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("BlobGet through node 3 = %d, %v (bytes equal %v); want the blob", n, err, bytes.Equal(out.Bytes(), data))
	}
	if got := tampered.Load(); got != 1 {
		t.Fatalf("node 1 tampered with %d streams; want 1 (node 3 must try it first)", got)
	}
	prom, err := c.Client(3).Prometheus(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := `aspen_blob_fetch_rejected_total{peer="1"} 1`; !strings.Contains(prom.Text, want) {
		t.Fatalf("node 3 metrics lack %q:\n%s", want, grepLines(prom.Text, "aspen_blob_"))
	}
	if got, err := os.ReadFile(blobFile(c, 3, h)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("node 3's stored copy: %v (equal %v)", err, bytes.Equal(got, data))
	}

	// A client whose first node tampers resumes on the next one.
	out.Reset()
	n, err = c.Client(1, 2).BlobGet(ctxT(t), h, &out)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("BlobGet through nodes 1, 2 = %d, %v (bytes equal %v); want the blob", n, err, bytes.Equal(out.Bytes(), data))
	}
	if got := tampered.Load(); got != 2 {
		t.Fatalf("node 1 tampered with %d streams; want 2 (the client must try it first)", got)
	}
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
