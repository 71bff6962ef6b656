package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
)

type echoReq struct {
	Text string `cbor:"text" json:"text"`
}

type echoResp struct {
	Text string `cbor:"text" json:"text"`
}

func echo(_ context.Context, r *echoReq) (*echoResp, error) { return &echoResp{Text: r.Text}, nil }

func TestHandleTwicePanics(t *testing.T) {
	tests := []struct {
		name   string
		second func(*rpc.Registry)
	}{
		{"unary then unary", func(r *rpc.Registry) { rpc.Handle(r, "op", echo) }},
		{"unary then stream", func(r *rpc.Registry) {
			rpc.HandleStream(r, "op", func(context.Context, *echoReq, io.Writer) error { return nil })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rpc.NewRegistry()
			rpc.Handle(r, "op", echo)
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("second registration did not panic")
				}
				if msg, _ := p.(string); !strings.Contains(msg, `"op"`) {
					t.Errorf("panic %v does not name the operation", p)
				}
			}()
			tt.second(r)
		})
	}
}

func TestInvoke(t *testing.T) {
	r := rpc.NewRegistry()
	rpc.Handle(r, "echo", echo)
	rpc.Handle(r, "fail", func(context.Context, *echoReq) (*echoResp, error) {
		return nil, api.Errorf(api.CodeConflict, "taken")
	})
	rpc.HandleStream(r, "stream", func(context.Context, *echoReq, io.Writer) error {
		t.Error("streaming handler called through Invoke")
		return nil
	})
	jsonBody := func(s string) func(any) error {
		return func(v any) error { return json.Unmarshal([]byte(s), v) }
	}
	tests := []struct {
		name     string
		op       string
		decode   func(any) error
		want     string
		wantCode api.Code
		wantText string // substring of the error message
	}{
		{name: "decodes with the decoder", op: "echo", decode: jsonBody(`{"text":"hi"}`), want: "hi"},
		{name: "cbor decoder", op: "echo", decode: func(v any) error {
			return rpc.Unmarshal(mustMarshal(t, &echoReq{Text: "cbor"}), v)
		}, want: "cbor"},
		{name: "unknown op", op: "nope", decode: jsonBody(`{}`), wantCode: api.CodeUnimplemented, wantText: `"nope"`},
		{name: "streaming op", op: "stream", decode: jsonBody(`{}`), wantCode: api.CodeUnimplemented, wantText: `"stream"`},
		{name: "decoder fails", op: "echo", decode: jsonBody(`{`), wantCode: api.CodeInvalidArgument, wantText: "echo"},
		{name: "handler error kept", op: "fail", decode: jsonBody(`{}`), wantCode: api.CodeConflict, wantText: "taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := r.Invoke(context.Background(), tt.op, tt.decode)
			if tt.wantCode != "" {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != tt.wantCode {
					t.Fatalf("err = %v, want code %s", err, tt.wantCode)
				}
				if !strings.Contains(ae.Message, tt.wantText) {
					t.Errorf("message %q does not contain %q", ae.Message, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			got, ok := resp.(*echoResp)
			if !ok || got.Text != tt.want {
				t.Fatalf("resp = %#v, want text %q", resp, tt.want)
			}
		})
	}
}

func TestInvokeUnknownOpDoesNotDecode(t *testing.T) {
	r := rpc.NewRegistry()
	_, err := r.Invoke(context.Background(), "nope", func(any) error {
		t.Error("decoder called for an unknown operation")
		return nil
	})
	if !errors.Is(err, api.ErrUnimplemented) {
		t.Fatalf("err = %v, want UNIMPLEMENTED", err)
	}
}

func TestOpsSorted(t *testing.T) {
	r := rpc.NewRegistry()
	if got := r.Ops(); len(got) != 0 {
		t.Fatalf("empty registry Ops = %v", got)
	}
	for _, op := range []string{"kv.put", "cluster.init", "kv.get", "a"} {
		rpc.Handle(r, op, echo)
	}
	rpc.HandleStream(r, "cluster.backup", func(context.Context, *echoReq, io.Writer) error { return nil })
	want := []string{"a", "cluster.backup", "cluster.init", "kv.get", "kv.put"}
	if got := r.Ops(); !slices.Equal(got, want) {
		t.Fatalf("Ops = %v, want %v", got, want)
	}
}
