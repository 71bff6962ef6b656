package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/hooks"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Hook operations. They run on the leader (the cluster forwards them);
// metrics and trigger report the leader's in-memory state.

// Headers of a webhook delivery, for receivers. The body is the event's
// JSON (event_id, event_type, topic, subjects, log_index, timestamp,
// node_id, payload).
const (
	// HookSignatureHeader is "sha256=" + hex HMAC-SHA256(secret, body);
	// check it with VerifyHookSignature.
	HookSignatureHeader = hooks.HeaderSignature
	// HookEventIDHeader is the event's ID: a leader failover may deliver
	// the event that was in flight again, under the same ID, so a receiver
	// that must act once de-duplicates on it.
	HookEventIDHeader = hooks.HeaderEventID
)

// VerifyHookSignature reports, in constant time, whether header (the
// HookSignatureHeader of a webhook request) signs body under secret (the
// handler's --secret).
func VerifyHookSignature(secret string, body []byte, header string) bool {
	return hooks.Verify(secret, body, header)
}

// HookList returns the handlers stored in the cluster.
func (c *Client) HookList(ctx context.Context) (*api.HookListResponse, error) {
	return call[api.HookListResponse](ctx, c, api.OpHookList, &api.HookListRequest{})
}

// HookAdd stores a handler (CONFLICT when the name exists and replace is
// false).
func (c *Client) HookAdd(ctx context.Context, req *api.HookAddRequest) (*api.HookResponse, error) {
	return call[api.HookResponse](ctx, c, api.OpHookAdd, req)
}

// HookRemove deletes a stored handler (NOT_FOUND when absent).
func (c *Client) HookRemove(ctx context.Context, name string) (*api.HookResponse, error) {
	return call[api.HookResponse](ctx, c, api.OpHookRemove, &api.HookRemoveRequest{Name: name})
}

// HookTrigger fires a synthetic event and waits for its handlers.
func (c *Client) HookTrigger(ctx context.Context, req *api.HookTriggerRequest) (*api.HookTriggerResponse, error) {
	return call[api.HookTriggerResponse](ctx, c, api.OpHookTrigger, req)
}

// HookMetrics returns the leader's delivery counters (of one handler when
// handler is not empty).
func (c *Client) HookMetrics(ctx context.Context, handler string) (*api.HookMetricsResponse, error) {
	return call[api.HookMetricsResponse](ctx, c, api.OpHookMetrics, &api.HookMetricsRequest{Handler: handler})
}

// HookCreateURL creates a hook URL ("aspenhook…") firing one core event
// type; anyone holding it can fire that event with TriggerHookURL until it
// expires.
func (c *Client) HookCreateURL(ctx context.Context, req *api.HookCreateURLRequest) (*api.HookCreateURLResponse, error) {
	return call[api.HookCreateURLResponse](ctx, c, api.OpHookCreateURL, req)
}

// TriggerHookURL fires the event of a hook URL with payload (JSON; empty =
// the URL's default payload). It needs no cluster ticket: it dials the
// URL's peers on api.ALPNHook in order until one answers. An expired or
// malformed URL is refused before anything is sent.
func TriggerHookURL(ctx context.Context, hookURL string, payload []byte) (*api.HookTriggerResponse, error) {
	u, err := hooks.ParseURL(hookURL, time.Now())
	if err != nil {
		return nil, err
	}
	if len(payload) > 0 && !json.Valid(payload) {
		return nil, errors.New("hook URL payload is not valid JSON")
	}
	body, err := rpc.Marshal(&api.HookTriggerURLRequest{Token: u.Token, Payload: payload})
	if err != nil {
		return nil, err
	}
	id, err := transport.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	ep, err := transport.Listen(transport.Config{Identity: id, Bind: ":0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("opening QUIC endpoint: %w", err)
	}
	defer ep.Close()
	var errs []error
	for _, p := range u.Peers {
		conn, err := ep.Dial(ctx, p.NodeAddr(), api.ALPNHook)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := rpc.Call(ctx, conn, &rpc.Request{Op: api.OpHookTriggerURL, Body: body})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if resp.Error != nil {
			return nil, resp.Error
		}
		var out api.HookTriggerResponse
		if err := rpc.Unmarshal(resp.Body, &out); err != nil {
			return nil, fmt.Errorf("decoding %s response: %w", api.OpHookTriggerURL, err)
		}
		return &out, nil
	}
	return nil, fmt.Errorf("no node of the hook URL answered: %w", errors.Join(errs...))
}
