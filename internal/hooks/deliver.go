package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// Headers of a webhook delivery.
const (
	HeaderSignature = "X-Aspen-Signature" // "sha256=" + hex HMAC-SHA256(secret, body)
	HeaderEventType = "X-Aspen-Event-Type"
	HeaderTopic     = "X-Aspen-Topic"
	// HeaderEventID carries Event.ID: receivers de-duplicate on it (a
	// leader failover may redeliver the events in flight at that instant).
	HeaderEventID = "X-Aspen-Event-Id"
)

// Sign returns the X-Aspen-Signature value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is the signature of body under secret, in
// constant time. Receivers of webhooks call it.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// postWebhook sends one attempt: a POST of the event JSON; a 2xx answer is
// success.
func (d *Dispatcher) postWebhook(ctx context.Context, h *api.HookHandler, ev *Event, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %q: %w", h.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aspen-hooks/1")
	req.Header.Set(HeaderEventType, ev.EventType)
	req.Header.Set(HeaderTopic, ev.Topic)
	req.Header.Set(HeaderEventID, ev.ID)
	if h.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(h.Secret, body))
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %q: %w", h.Name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, api.MaxHookOutputSize))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %q: %s answered %s: %s", h.Name, h.URL, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// cappedBuffer keeps the first api.MaxHookOutputSize bytes written to it
// and discards the rest.
type cappedBuffer struct {
	buf       bytes.Buffer
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	room := api.MaxHookOutputSize - c.buf.Len()
	if len(p) > room {
		c.truncated = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

// runShell runs one attempt of a shell handler: sh -c command, with the
// event JSON on stdin and in the environment (ASPEN_HOOK_EVENT and
// ASPEN_EVENT_JSON), its topic (ASPEN_HOOK_TOPIC), its most specific
// subject (ASPEN_EVENT_SUBJECT: the key subject of a KV event, else the
// topic), its type (ASPEN_HOOK_EVENT_TYPE), its ID (ASPEN_HOOK_EVENT_ID, to
// de-duplicate on) and its log index (ASPEN_EVENT_LOG_INDEX, 0 when none). Output (stdout and stderr, together at most 64 KiB) is
// quoted in the error of a failed run. ctx's deadline kills the shell.
func runShell(ctx context.Context, command string, ev *Event, body []byte) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(),
		"ASPEN_HOOK_EVENT="+string(body),
		"ASPEN_EVENT_JSON="+string(body),
		"ASPEN_HOOK_TOPIC="+ev.Topic,
		"ASPEN_EVENT_SUBJECT="+ev.Subjects[len(ev.Subjects)-1],
		"ASPEN_HOOK_EVENT_TYPE="+ev.EventType,
		"ASPEN_HOOK_EVENT_ID="+ev.ID,
		fmt.Sprintf("ASPEN_EVENT_LOG_INDEX=%d", ev.LogIndex),
	)
	cmd.Stdin = bytes.NewReader(body)
	var out cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // don't wait forever on pipes held by children
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	tail := strings.TrimSpace(out.buf.String())
	if len(tail) > 512 {
		tail = "..." + tail[len(tail)-512:]
	}
	if tail != "" {
		return fmt.Errorf("shell hook: %w: %s", err, tail)
	}
	return fmt.Errorf("shell hook: %w", err)
}
