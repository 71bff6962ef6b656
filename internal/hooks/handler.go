package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/aspen-dev/aspen/api"
)

// Normalize validates h against the limits of spec 05 and returns a copy
// with the defaults filled in (timeout 5 s, 3 retries, enabled). Errors
// name the handler and the field.
func Normalize(h api.HookHandler) (api.HookHandler, error) {
	fail := func(format string, args ...any) (api.HookHandler, error) {
		return api.HookHandler{}, fmt.Errorf("hook %q: %s", h.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case h.Name == "":
		return api.HookHandler{}, errors.New("hook name is empty")
	case len(h.Name) > api.MaxHookNameSize || !validSegment(h.Name):
		return fail("name must be 1-%d letters, digits, '-' or '_'", api.MaxHookNameSize)
	}
	if _, err := ParsePattern(h.Pattern); err != nil {
		return fail("%v", err)
	}
	switch h.Type {
	case api.HookInProcess:
	case api.HookShell:
		if h.Command == "" {
			return fail("a shell handler needs a command")
		}
		if len(h.Command) > api.MaxHookCommandSize {
			return fail("command is %d bytes; the limit is %d", len(h.Command), api.MaxHookCommandSize)
		}
	case api.HookWebhook:
		if len(h.URL) > api.MaxHookURLSize {
			return fail("url is %d bytes; the limit is %d", len(h.URL), api.MaxHookURLSize)
		}
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fail("url %q: want an http:// or https:// URL", h.URL)
		}
	case "":
		return fail("type is empty: want %s, %s or %s", api.HookInProcess, api.HookShell, api.HookWebhook)
	default:
		return fail("type %q: want %s, %s or %s", h.Type, api.HookInProcess, api.HookShell, api.HookWebhook)
	}
	if h.Type != api.HookWebhook && (h.URL != "" || h.Secret != "") {
		return fail("url and secret are for webhook handlers only")
	}
	if h.Type != api.HookShell && h.Command != "" {
		return fail("command is for shell handlers only")
	}
	switch {
	case h.TimeoutMs < 0 || h.TimeoutMs > api.MaxHookTimeoutMs:
		return fail("timeout_ms %d: want 1..%d (0 = %d)", h.TimeoutMs, api.MaxHookTimeoutMs, api.DefaultHookTimeoutMs)
	case h.TimeoutMs == 0:
		h.TimeoutMs = api.DefaultHookTimeoutMs
	}
	r := api.DefaultHookRetries
	if h.RetryCount != nil {
		r = *h.RetryCount
	}
	if r < 0 || r > api.MaxHookRetries {
		return fail("retry_count %d: want 0..%d", r, api.MaxHookRetries)
	}
	h.RetryCount = &r
	on := h.Enabled == nil || *h.Enabled
	h.Enabled = &on
	return h, nil
}

// ValidateAll checks a list of handlers (from a config file): each one,
// unique names and at most api.MaxHookHandlers of them.
func ValidateAll(hs []api.HookHandler) error {
	if len(hs) > api.MaxHookHandlers {
		return fmt.Errorf("hooks: %d handlers; the limit is %d", len(hs), api.MaxHookHandlers)
	}
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		if _, err := Normalize(h); err != nil {
			return fmt.Errorf("hooks: %w", err)
		}
		if seen[h.Name] {
			return fmt.Errorf("hooks: handler name %q is used twice", h.Name)
		}
		seen[h.Name] = true
	}
	return nil
}

// ParseTOML reads the [[hooks]] tables of a TOML document that holds only
// them, strictly (unknown fields are errors), and validates them:
//
//	[[hooks]]
//	name = "audit"
//	pattern = "hooks.kv.>"
//	type = "shell"
//	command = "logger -t aspen \"$ASPEN_HOOK_TOPIC\""
//	timeout_ms = 2000
func ParseTOML(b []byte) ([]api.HookHandler, error) {
	var doc struct {
		Hooks []api.HookHandler `toml:"hooks"`
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("hooks config: %w", err)
	}
	if err := ValidateAll(doc.Hooks); err != nil {
		return nil, err
	}
	return doc.Hooks, nil
}

// Info is the listing form of a normalized handler (no secret).
func Info(h api.HookHandler) api.HookHandlerInfo {
	n, err := Normalize(h)
	if err == nil {
		h = n
	}
	info := api.HookHandlerInfo{
		Name: h.Name, Pattern: h.Pattern, HandlerType: h.Type, ExecutionMode: "direct",
		IsEnabled: h.Enabled == nil || *h.Enabled, TimeoutMs: h.TimeoutMs,
		Command: h.Command, URL: h.URL, HasSecret: h.Secret != "",
	}
	if h.RetryCount != nil {
		info.RetryCount = *h.RetryCount
	}
	return info
}

func timeoutOf(h *api.HookHandler) time.Duration {
	return time.Duration(h.TimeoutMs) * time.Millisecond
}
