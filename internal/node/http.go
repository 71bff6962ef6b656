package node

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// startHTTP serves /metrics, /healthz and the JSON gateway POST /v1/{op}.
// Gateway calls must carry "Authorization: Bearer <hex client credential>".
func (n *Node) startHTTP() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr %s: %w", n.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h, _ := n.clusterHealth(r.Context(), nil)
		status := http.StatusOK
		if h.Status != api.HealthHealthy {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, h)
	})
	mux.HandleFunc("POST /v1/{op}", n.gateway)
	n.httpLn = ln
	n.http = &http.Server{Handler: mux}
	n.goFunc(func() {
		if err := n.http.Serve(ln); err != nil && err != http.ErrServerClosed {
			n.log.Error("http server stopped", "err", err)
		}
	})
	return nil
}

func (n *Node) gateway(w http.ResponseWriter, r *http.Request) {
	token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	want := hex.EncodeToString(n.keys.Client)
	if !bearer || subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		writeErr(w, api.Errorf(api.CodeUnauthorized, "missing or invalid credential: send Authorization: Bearer <client credential hex>"))
		return
	}
	body := http.MaxBytesReader(w, r.Body, rpc.MaxFrameSize)
	resp, err := n.server.Invoke(r.Context(), r.PathValue("op"), func(v any) error {
		dec := json.NewDecoder(body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil && err != io.EOF {
			return err
		}
		if dec.More() {
			return errors.New("unexpected data after the JSON object")
		}
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		ae = &api.Error{Code: api.CodeOf(err), Message: err.Error()}
	}
	writeJSON(w, api.HTTPStatus(err), map[string]any{"error": ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
