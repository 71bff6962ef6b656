package hooks

import (
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"hooks.kv.*", "hooks.kv.write_committed", true},
		{"hooks.kv.*", "hooks.kv.a.b", false},
		{"hooks.kv.*", "hooks.kv", false},
		{"hooks.>", "hooks.ci.pipeline_failed", true},
		{"hooks.>", "hooks", true}, // '>' is zero or more segments (spec 05)
		{"hooks.>", "other.ci", false},
		{">", "anything.at.all", true},
		{">", "x", true},
		{"hooks.kv.write_committed", "hooks.kv.write_committed", true},
		{"hooks.kv.write_committed", "hooks.kv.delete_committed", false},
		{"hooks.kv.write_committed", "hooks.kv.write_committed.x", false},
		{"*.kv.*", "hooks.kv.ttl_expired", true},
		{"*", "hooks", true},
		{"*", "hooks.kv", false},
		{"*.>", "a", true},
		{"kv.put.users.>", "kv.put.users.42.name", true},
		{"kv.*.users.*", "kv.delete.users.42", true},
		{"kv.*.users.*", "kv.delete.groups.42", false},
		{"hooks.kv.*", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.subject, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			if err != nil {
				t.Fatalf("ParsePattern(%q): %v", tt.pattern, err)
			}
			if got := p.Match(tt.subject); got != tt.want {
				t.Errorf("%q.Match(%q) = %v; want %v", tt.pattern, tt.subject, got, tt.want)
			}
		})
	}
}

func TestParsePatternInvalid(t *testing.T) {
	for name, pat := range map[string]string{
		"empty":            "",
		"empty segment":    "hooks..kv",
		"leading dot":      ".hooks",
		"trailing dot":     "hooks.",
		"gt not last":      "hooks.>.kv",
		"partial wildcard": "hooks.k*",
		"partial gt":       "hooks.a>",
		"space":            "hooks.k v",
		"slash":            "kv/put",
		"too long":         strings.Repeat("a", 257),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePattern(pat); err == nil {
				t.Errorf("ParsePattern(%q) succeeded; want an error", pat)
			}
		})
	}
	if _, err := ParsePattern(strings.Repeat("a", 256)); err != nil {
		t.Errorf("a 256-byte pattern: %v", err)
	}
	var zero Pattern
	if zero.Match("x") {
		t.Error("the zero Pattern matched")
	}
}

func TestKeySubject(t *testing.T) {
	tests := []struct {
		kind, key, want string
	}{
		{"put", "users/42:name", "kv.put.users.42.name"},
		{"delete", "a.b c", "kv.delete.a_b_c"},
		{"put", "/x//y/", "kv.put._.x._.y._"},
		{"put", "", "kv.put._"},
	}
	for _, tt := range tests {
		got := KeySubject(tt.kind, []byte(tt.key))
		if got != tt.want {
			t.Errorf("KeySubject(%q, %q) = %q; want %q", tt.kind, tt.key, got, tt.want)
		}
		if _, err := ParsePattern(got); err != nil {
			t.Errorf("subject %q is not a valid literal pattern: %v", got, err)
		}
	}
}

func FuzzPattern(f *testing.F) {
	f.Add("hooks.>", "hooks.kv.x")
	f.Add("*.a", "b.a")
	f.Fuzz(func(t *testing.T, pat, subj string) {
		p, err := ParsePattern(pat)
		if err != nil {
			return
		}
		p.Match(subj)
		if !strings.ContainsAny(pat, "*>") && p.Match(subj) != (pat == subj) {
			t.Errorf("literal %q vs %q", pat, subj)
		}
	})
}
