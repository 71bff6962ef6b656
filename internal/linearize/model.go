// Package linearize records histories of key/value operations against an
// Aspen cluster and checks them for linearizability with porcupine.
//
// The model is a map of independent registers: get, put, compare-and-swap
// and delete on one key each, so histories are partitioned by key and each
// key is checked on its own. A write whose outcome is unknown (it timed
// out, or failed with UNAVAILABLE after it may have left the client) is
// recorded as possibly applied: its return time is the end of the history,
// so porcupine may place it anywhere after its call, or (equivalently to not
// applying it) after everything else.
package linearize

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Kind is an operation of the model.
type Kind uint8

// The operations.
const (
	Get Kind = iota
	Put
	CAS // put NewValue if the key holds Expected (or, with MustNotExist, is absent)
	Delete
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case CAS:
		return "cas"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Input is what a client asked.
type Input struct {
	Kind         Kind
	Key          string
	Value        string // put, cas: the new value
	Expected     string // cas
	MustNotExist bool   // cas: succeed only if the key is absent
}

// Output is what the client was told. Unknown marks a write whose outcome
// is unknown; the model accepts it whether or not it applied.
type Output struct {
	Found     bool   // get: the key existed; delete: it existed
	Value     string // get: the value read
	Succeeded bool   // cas: the swap happened
	Unknown   bool
}

// state is one key's register; comparable, so porcupine's == works.
type state struct {
	exists bool
	value  string
}

// Model is the porcupine model of Aspen's key/value API, partitioned by key.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, k := range order {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return state{} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(state), in.(Input), out.(Output)
		switch i.Kind {
		case Get:
			return o.Found == s.exists && (!s.exists || o.Value == s.value), s
		case Put:
			return true, state{exists: true, value: i.Value}
		case CAS:
			ok := s.exists && s.value == i.Expected
			if i.MustNotExist {
				ok = !s.exists
			}
			if o.Unknown {
				if ok {
					return true, state{exists: true, value: i.Value}
				}
				return true, s
			}
			if o.Succeeded != ok {
				return false, s
			}
			if ok {
				return true, state{exists: true, value: i.Value}
			}
			return true, s
		case Delete:
			if !o.Unknown && o.Found != s.exists {
				return false, s
			}
			return true, state{}
		}
		return false, s
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(Input), out.(Output)
		res := ""
		switch i.Kind {
		case Get:
			res = "<none>"
			if o.Found {
				res = fmt.Sprintf("%q", o.Value)
			}
		case Put:
			res = "ok"
		case CAS:
			res = fmt.Sprint(o.Succeeded)
		case Delete:
			res = fmt.Sprintf("existed=%v", o.Found)
		}
		if o.Unknown {
			res = "unknown"
		}
		switch i.Kind {
		case Get:
			return fmt.Sprintf("get(%s) -> %s", i.Key, res)
		case Put:
			return fmt.Sprintf("put(%s, %q) -> %s", i.Key, i.Value, res)
		case CAS:
			if i.MustNotExist {
				return fmt.Sprintf("cas(%s, <none> -> %q) -> %s", i.Key, i.Value, res)
			}
			return fmt.Sprintf("cas(%s, %q -> %q) -> %s", i.Key, i.Expected, i.Value, res)
		default:
			return fmt.Sprintf("delete(%s) -> %s", i.Key, res)
		}
	},
	DescribeState: func(st any) string {
		s := st.(state)
		if !s.exists {
			return "<none>"
		}
		return fmt.Sprintf("%q", s.value)
	},
}
