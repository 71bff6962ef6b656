package hooks

import (
	"fmt"
	"strings"

	"github.com/aspen-dev/aspen/api"
)

// Pattern is a parsed NATS-style subject pattern: dot-separated segments,
// each a literal (letters, digits, '-', '_'), '*' (exactly one segment) or,
// as the last segment only, '>' (zero or more trailing segments). The zero
// Pattern matches nothing. A Pattern is immutable and safe to share.
type Pattern struct {
	text string
	segs []string
}

// ParsePattern parses and validates a pattern of at most
// api.MaxHookPatternSize bytes.
func ParsePattern(s string) (Pattern, error) {
	switch {
	case s == "":
		return Pattern{}, fmt.Errorf("hook pattern is empty")
	case len(s) > api.MaxHookPatternSize:
		return Pattern{}, fmt.Errorf("hook pattern is %d bytes; the limit is %d", len(s), api.MaxHookPatternSize)
	}
	segs := strings.Split(s, ".")
	for i, seg := range segs {
		switch {
		case seg == "*":
		case seg == ">":
			if i != len(segs)-1 {
				return Pattern{}, fmt.Errorf("hook pattern %q: '>' must be the last segment", s)
			}
		case seg == "":
			return Pattern{}, fmt.Errorf("hook pattern %q: empty segment", s)
		case !validSegment(seg):
			return Pattern{}, fmt.Errorf("hook pattern %q: segment %q may hold only letters, digits, '-' and '_' (or be '*' or '>')", s, seg)
		}
	}
	return Pattern{text: s, segs: segs}, nil
}

// MustParsePattern is ParsePattern for patterns known to be valid; it
// panics otherwise. For literals in code and tests.
func MustParsePattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern's text.
func (p Pattern) String() string { return p.text }

// Match reports whether subject (dot-separated segments) matches p.
func (p Pattern) Match(subject string) bool {
	if p.segs == nil || subject == "" {
		return false
	}
	subj := strings.Split(subject, ".")
	for i, seg := range p.segs {
		if seg == ">" {
			return true // zero or more trailing segments
		}
		if i >= len(subj) || seg != "*" && seg != subj[i] {
			return false
		}
	}
	return len(subj) == len(p.segs)
}

// validSegment reports whether s is a non-empty literal segment.
func validSegment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !segmentByte(s[i]) {
			return false
		}
	}
	return true
}

func segmentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
