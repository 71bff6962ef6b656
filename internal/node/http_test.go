package node_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/node"
	"github.com/aspen-dev/aspen/internal/ticket"
)

// httpNode is a one-node cluster serving HTTP, with its gateway credential.
type httpNode struct {
	base   string // http://host:port
	bearer string // hex client credential
	client *http.Client
}

func newHTTPNode(t *testing.T) *httpNode {
	t.Helper()
	cl := clustertest.New(t, 1, clustertest.Options{Configure: func(c *node.Config) { c.HTTPAddr = "127.0.0.1:0" }})
	return httpNodeOf(t, cl.WaitLeader().Node)
}

// httpNodeOf talks to n's HTTP listener.
func httpNodeOf(t *testing.T, n *node.Node) *httpNode {
	t.Helper()
	addr := n.HTTPAddr()
	if addr == nil {
		t.Fatal("HTTPAddr() = nil with HTTPAddr configured")
	}
	tk, err := ticket.Parse(n.Ticket())
	if err != nil {
		t.Fatalf("parsing the node's ticket: %v", err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return &httpNode{base: "http://" + addr.String(), bearer: hex.EncodeToString(tk.Credential), client: hc}
}

// do sends a request and returns the status and body.
func (h *httpNode) do(t *testing.T, method, path, auth, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, h.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(path, "/v1/") && ct != "application/json" && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, b
}

// call posts body to the gateway operation op with the right credential.
func (h *httpNode) call(t *testing.T, op, body string) (int, []byte) {
	t.Helper()
	return h.do(t, http.MethodPost, "/v1/"+op, "Bearer "+h.bearer, body)
}

// wantAPIError checks a gateway error answer: its status and JSON code.
func wantAPIError(t *testing.T, status int, body []byte, wantStatus int, wantCode api.Code) {
	t.Helper()
	var got struct {
		Error *api.Error `json:"error"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if status != wantStatus || got.Error == nil || got.Error.Code != wantCode {
		t.Fatalf("got %d %s, want %d with code %s", status, body, wantStatus, wantCode)
	}
	if got.Error.Message == "" {
		t.Errorf("error %s has no message", body)
	}
}

func TestHTTP(t *testing.T) {
	h := newHTTPNode(t)

	t.Run("healthz", func(t *testing.T) {
		status, body := h.do(t, http.MethodGet, "/healthz", "", "")
		if status != http.StatusOK {
			t.Fatalf("status %d, want 200 (%s)", status, body)
		}
		var hr api.HealthResponse
		if err := json.Unmarshal(body, &hr); err != nil {
			t.Fatalf("healthz body %q: %v", body, err)
		}
		if hr.Status != api.HealthHealthy || !hr.Initialized || hr.NodeID != 1 || hr.LeaderID != 1 {
			t.Fatalf("health = %+v, want healthy initialized node 1 leading", hr)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		status, body := h.do(t, http.MethodGet, "/metrics", "", "")
		if status != http.StatusOK {
			t.Fatalf("status %d, want 200", status)
		}
		for _, want := range []string{"aspen_raft_term", "aspen_rpc_requests_total", "aspen_raft_is_leader 1"} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("metrics do not contain %q", want)
			}
		}
	})

	t.Run("put then get", func(t *testing.T) {
		// []byte fields are base64 in JSON; names match case-insensitively
		status, body := h.call(t, api.OpKVPut, `{"Key":"aGVsbG8=","Value":"d29ybGQ="}`)
		if status != http.StatusOK {
			t.Fatalf("put: %d %s", status, body)
		}
		var put api.PutResponse
		if err := json.Unmarshal(body, &put); err != nil || put.Revision == 0 {
			t.Fatalf("put answer %s: %+v, %v; want a revision", body, put, err)
		}

		status, body = h.call(t, api.OpKVGet, `{"key":"aGVsbG8="}`)
		if status != http.StatusOK {
			t.Fatalf("get: %d %s", status, body)
		}
		var got api.GetResponse
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("get answer %s: %v", body, err)
		}
		if got.KV == nil || string(got.KV.Key) != "hello" || string(got.KV.Value) != "world" || got.KV.ModRevision != put.Revision {
			t.Fatalf("get = %s, want hello=world at revision %d", body, put.Revision)
		}
	})

	t.Run("get of a missing key", func(t *testing.T) {
		status, body := h.call(t, api.OpKVGet, `{"key":"bm9uZQ=="}`)
		var got api.GetResponse
		if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.KV != nil {
			t.Fatalf("get missing = %d %s, want 200 with no kv", status, body)
		}
	})

	t.Run("empty body is an empty request", func(t *testing.T) {
		status, body := h.call(t, api.OpClusterStatus, "")
		var st api.StatusResponse
		if status != http.StatusOK || json.Unmarshal(body, &st) != nil || len(st.Nodes) != 1 {
			t.Fatalf("status = %d %s, want one node", status, body)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		tests := []struct {
			name string
			auth string
		}{
			{name: "missing", auth: ""},
			{name: "wrong", auth: "Bearer " + strings.Repeat("00", len(h.bearer)/2)},
			{name: "no Bearer prefix", auth: h.bearer},
			{name: "other scheme", auth: "Basic " + h.bearer},
			{name: "truncated", auth: "Bearer " + h.bearer[:len(h.bearer)-2]},
			{name: "bearer only", auth: "Bearer "},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body := h.do(t, http.MethodPost, "/v1/"+api.OpKVPut, tt.auth, `{"key":"dW5hdXRo","value":"eA=="}`)
				wantAPIError(t, status, body, http.StatusUnauthorized, api.CodeUnauthorized)
			})
		}
		// nothing was written by the refused calls
		status, body := h.call(t, api.OpKVGet, `{"key":"dW5hdXRo"}`)
		var got api.GetResponse
		if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.KV != nil {
			t.Fatalf("get after refused puts = %d %s, want no kv", status, body)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name       string
			op         string
			body       string
			wantStatus int
			wantCode   api.Code
		}{
			{"unknown op", "kv.nope", `{}`, http.StatusNotImplemented, api.CodeUnimplemented},
			{"streaming op", api.OpClusterBackup, `{}`, http.StatusNotImplemented, api.CodeUnimplemented},
			{"bad JSON", api.OpKVPut, `{"key":`, http.StatusBadRequest, api.CodeInvalidArgument},
			{"not an object", api.OpKVPut, `[1,2]`, http.StatusBadRequest, api.CodeInvalidArgument},
			{"unknown field", api.OpKVPut, `{"key":"aw==","nope":1}`, http.StatusBadRequest, api.CodeInvalidArgument},
			{"bytes not base64", api.OpKVPut, `{"key":"not base64!"}`, http.StatusBadRequest, api.CodeInvalidArgument},
			{"wrong field type", api.OpKVPut, `{"key":5}`, http.StatusBadRequest, api.CodeInvalidArgument},
			{"empty key", api.OpKVPut, `{"value":"eA=="}`, http.StatusBadRequest, api.CodeInvalidArgument},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body := h.call(t, tt.op, tt.body)
				wantAPIError(t, status, body, tt.wantStatus, tt.wantCode)
			})
		}
	})

	t.Run("gateway is POST only", func(t *testing.T) {
		if status, _ := h.do(t, http.MethodGet, "/v1/"+api.OpKVGet, "Bearer "+h.bearer, ""); status != http.StatusMethodNotAllowed {
			t.Fatalf("GET /v1/kv.get = %d, want 405", status)
		}
	})
}

func TestHTTPAddrNilWithoutHTTP(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	if addr := cl.Members[0].Node.HTTPAddr(); addr != nil {
		t.Fatalf("HTTPAddr() = %v without HTTPAddr configured, want nil", addr)
	}
}

func TestHTTPGatewayForwardsFromFollower(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{Configure: func(c *node.Config) { c.HTTPAddr = "127.0.0.1:0" }})
	leader := cl.WaitLeader()
	var follower *node.Node
	for _, m := range cl.Members {
		if m.ID != leader.ID {
			follower = m.Node
		}
	}
	h := httpNodeOf(t, follower)
	status, body := h.call(t, api.OpKVPut, `{"key":"ZndkCg==","value":"eA=="}`)
	if status != http.StatusOK {
		t.Fatalf("put through follower gateway = %d %s, want 200 (forwarded to the leader)", status, body)
	}
	status, body = h.call(t, api.OpKVGet, `{"key":"ZndkCg=="}`)
	var got api.GetResponse
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.KV == nil || string(got.KV.Value) != "x" {
		t.Fatalf("linearizable get through follower gateway = %d %s", status, body)
	}
}
