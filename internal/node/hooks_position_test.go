package node

import "testing"

// TestHookPosition: the stored cursor form round-trips ("R-I" for one
// event, "R" for a whole revision, the form written before event IDs), and
// covers/from place events around it.
func TestHookPosition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want position
		from uint64
	}{
		{"12", position{12, wholeRevision}, 13},
		{"12-0", position{12, 0}, 12},
		{"12-3", position{12, 3}, 12},
		{"0", position{0, wholeRevision}, 1},
	} {
		got, err := parsePosition(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parsePosition(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.in {
			t.Errorf("%+v.String() = %q; want %q", got, got.String(), tc.in)
		}
		if got.from() != tc.from {
			t.Errorf("%+v.from() = %d; want %d", got, got.from(), tc.from)
		}
	}
	for _, bad := range []string{"", "x", "-1", "3-", "3-x", "3--1", "3-2147483647"} {
		if p, err := parsePosition(bad); err == nil {
			t.Errorf("parsePosition(%q) = %+v; want an error", bad, p)
		}
	}
	p := position{12, 3}
	for _, tc := range []struct {
		rev   uint64
		index int
		want  bool
	}{
		{11, 99, true}, {12, 0, true}, {12, 3, true}, {12, 4, false}, {13, 0, false},
	} {
		if got := p.covers(tc.rev, tc.index); got != tc.want {
			t.Errorf("%v covers %d-%d = %v; want %v", p, tc.rev, tc.index, got, tc.want)
		}
	}
	if whole := (position{12, wholeRevision}); !whole.covers(12, 1000) || whole.covers(13, 0) {
		t.Errorf("%v must cover every event of revision 12 and none after", whole)
	}
}
