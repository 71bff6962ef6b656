package kv

import (
	"fmt"
	"math"

	"github.com/aspen-dev/aspen/api"
	"github.com/fxamacker/cbor/v2"
)

// Command is the one Raft log entry type of the key/value state machine. It
// carries exactly one of Txn (a client write) or Expire (proposed by the
// leader's TTL sweeper). Commands are encoded with EncodeCommand and decoded
// with DecodeCommand.
type Command struct {
	// NowMs is the leader's wall clock (unix ms) when it proposed the command.
	// TTLs and expiry checks use it; the state machine never reads the clock.
	NowMs  int64           `cbor:"now_ms"`
	Txn    *api.TxnRequest `cbor:"txn,omitempty"`
	Expire []ExpiredKey    `cbor:"expire,omitempty"`
}

// ExpiredKey names a key the TTL sweeper found expired, with the ModRevision
// its record had then. An Expire command deletes the key only if its record
// still has that ModRevision, so a key rewritten since is left alone.
type ExpiredKey struct {
	Key         []byte `cbor:"key"`
	ModRevision uint64 `cbor:"mod_revision"`
}

// MaxExpireKeys is the most keys one Expire command may name.
const MaxExpireKeys = api.MaxScanLimit

// maxNowMs bounds Command.NowMs so that NowMs + api.MaxTTLMs cannot overflow.
const maxNowMs = math.MaxInt64 - api.MaxTTLMs

var (
	// cmdEnc encodes commands deterministically (RFC 8949 core deterministic
	// encoding: shortest integers, sorted map keys).
	cmdEnc = mustEncMode(cbor.CoreDetEncOptions())
	// cmdDec rejects duplicate map keys, unknown fields and case-insensitive
	// field matches, so that one byte string has exactly one meaning.
	cmdDec = mustDecMode(cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		MaxNestedLevels:   16,
	})
)

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(fmt.Sprintf("kv: invalid CBOR encoding options: %v", err)) // programming error, caught by any test
	}
	return m
}

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(fmt.Sprintf("kv: invalid CBOR decoding options: %v", err)) // programming error, caught by any test
	}
	return m
}

// EncodeCommand encodes c for the Raft log. The encoding is deterministic:
// equal commands encode to equal bytes. It is safe for concurrent use.
func EncodeCommand(c *Command) ([]byte, error) {
	if c == nil {
		return nil, fmt.Errorf("kv: encode command: nil command")
	}
	b, err := cmdEnc.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("kv: encode command: %w", err)
	}
	return b, nil
}

// DecodeCommand decodes a command encoded by EncodeCommand. Garbage, trailing
// bytes, duplicate or unknown fields yield an error; it never panics. It does
// not validate the command's contents (see ValidateTxn). It is safe for
// concurrent use.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("kv: decode command: empty input")
	}
	var c Command
	if err := cmdDec.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("kv: decode command (%d bytes): %w", len(b), err)
	}
	return &c, nil
}

// validateCommand checks a whole command as the state machine applies it.
func validateCommand(c *Command) error {
	if c.NowMs < 0 || c.NowMs > maxNowMs {
		return api.Errorf(api.CodeInvalidArgument, "now_ms is %d; want 0..%d", c.NowMs, int64(maxNowMs))
	}
	switch {
	case c.Txn != nil && len(c.Expire) > 0:
		return api.Errorf(api.CodeInvalidArgument, "command has both txn and expire; want exactly one")
	case c.Txn != nil:
		return ValidateTxn(c.Txn)
	case len(c.Expire) > 0:
		if len(c.Expire) > MaxExpireKeys {
			return api.Errorf(api.CodeInvalidArgument, "expire has %d keys; the limit is %d", len(c.Expire), MaxExpireKeys)
		}
		for i, e := range c.Expire {
			if err := checkKey(elem{"expire", i}, e.Key); err != nil {
				return err
			}
		}
		return nil
	default:
		return api.Errorf(api.CodeInvalidArgument, "command has neither txn nor expire; want exactly one")
	}
}

// ValidateTxn checks t against every limit of the api package: at most
// api.MaxBatchOps compares and api.MaxBatchOps operations per branch; keys
// non-empty and at most api.MaxKeySize bytes (range and delete_range take a
// prefix; only range may use the empty prefix); values at most
// api.MaxValueSize bytes; known kinds, targets and results; fields used only
// by the kinds they belong to (value: put; ttl_ms: put, add; delta: add;
// limit: range); TTL in 0..api.MaxTTLMs; range limit in 0..api.MaxScanLimit.
//
// The error is an *api.Error with code INVALID_ARGUMENT whose message names
// the field, its size and the limit, e.g.
// "success[0].key is 1025 bytes; the limit is 1024". It is safe for
// concurrent use.
func ValidateTxn(t *api.TxnRequest) error {
	if t == nil {
		return api.Errorf(api.CodeInvalidArgument, "txn is missing")
	}
	if n := len(t.Compares); n > api.MaxBatchOps {
		return api.Errorf(api.CodeInvalidArgument, "compares has %d entries; the limit is %d", n, api.MaxBatchOps)
	}
	for i := range t.Compares {
		if err := validateCompare(elem{"compares", i}, &t.Compares[i]); err != nil {
			return err
		}
	}
	for _, br := range []struct {
		name string
		ops  []api.TxnOp
	}{{"success", t.Success}, {"failure", t.Failure}} {
		if n := len(br.ops); n > api.MaxBatchOps {
			return api.Errorf(api.CodeInvalidArgument, "%s has %d operations; the limit is %d", br.name, n, api.MaxBatchOps)
		}
		for i := range br.ops {
			if err := validateOp(elem{br.name, i}, &br.ops[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateCompare(field elem, c *api.Compare) error {
	if err := checkKey(field, c.Key); err != nil {
		return err
	}
	switch c.Result {
	case api.Equal, api.NotEqual, api.Less, api.Greater:
	default:
		return api.Errorf(api.CodeInvalidArgument, "%s.result %q is unknown; want one of =, !=, <, >", field, c.Result)
	}
	switch c.Target {
	case api.TargetValue:
		if len(c.Value) > api.MaxValueSize {
			return api.Errorf(api.CodeInvalidArgument, "%s.value is %d bytes; the limit is %d", field, len(c.Value), api.MaxValueSize)
		}
		if c.Number != 0 {
			return api.Errorf(api.CodeInvalidArgument, "%s.number is %d but target is value; number is only for version, create_revision and mod_revision", field, c.Number)
		}
	case api.TargetVersion, api.TargetCreateRevision, api.TargetModRevision:
		if len(c.Value) != 0 {
			return api.Errorf(api.CodeInvalidArgument, "%s.value is %d bytes but target is %s; value is only for target value", field, len(c.Value), c.Target)
		}
	default:
		return api.Errorf(api.CodeInvalidArgument, "%s.target %q is unknown; want one of value, version, create_revision, mod_revision", field, c.Target)
	}
	return nil
}

func validateOp(field elem, op *api.TxnOp) error {
	switch op.Kind {
	case api.TxnPut, api.TxnDelete, api.TxnGet, api.TxnAdd, api.TxnDeleteRange:
		if err := checkKey(field, op.Key); err != nil {
			return err
		}
	case api.TxnRange:
		if len(op.Key) > api.MaxKeySize {
			return api.Errorf(api.CodeInvalidArgument, "%s.key is %d bytes; the limit is %d", field, len(op.Key), api.MaxKeySize)
		}
	default:
		return api.Errorf(api.CodeInvalidArgument, "%s.kind %q is unknown; want one of put, delete, delete_range, get, range, add", field, op.Kind)
	}
	if len(op.Value) > api.MaxValueSize {
		return api.Errorf(api.CodeInvalidArgument, "%s.value is %d bytes; the limit is %d", field, len(op.Value), api.MaxValueSize)
	}
	if len(op.Value) != 0 && op.Kind != api.TxnPut {
		return api.Errorf(api.CodeInvalidArgument, "%s.value is %d bytes but kind is %s; value is only for put", field, len(op.Value), op.Kind)
	}
	if op.TTLMs < 0 || op.TTLMs > api.MaxTTLMs {
		return api.Errorf(api.CodeInvalidArgument, "%s.ttl_ms is %d; want 0..%d", field, op.TTLMs, int64(api.MaxTTLMs))
	}
	if op.TTLMs != 0 && op.Kind != api.TxnPut && op.Kind != api.TxnAdd {
		return api.Errorf(api.CodeInvalidArgument, "%s.ttl_ms is %d but kind is %s; ttl_ms is only for put and add", field, op.TTLMs, op.Kind)
	}
	if op.Delta != 0 && op.Kind != api.TxnAdd {
		return api.Errorf(api.CodeInvalidArgument, "%s.delta is %d but kind is %s; delta is only for add", field, op.Delta, op.Kind)
	}
	if op.Limit < 0 || op.Limit > api.MaxScanLimit {
		return api.Errorf(api.CodeInvalidArgument, "%s.limit is %d; want 0..%d", field, op.Limit, api.MaxScanLimit)
	}
	if op.Limit != 0 && op.Kind != api.TxnRange {
		return api.Errorf(api.CodeInvalidArgument, "%s.limit is %d but kind is %s; limit is only for range", field, op.Limit, op.Kind)
	}
	return nil
}

// checkKey checks the key of the list element field.
func checkKey(field elem, key []byte) error {
	if len(key) == 0 {
		return api.Errorf(api.CodeInvalidArgument, "%s.key is empty", field)
	}
	if len(key) > api.MaxKeySize {
		return api.Errorf(api.CodeInvalidArgument, "%s.key is %d bytes; the limit is %d", field, len(key), api.MaxKeySize)
	}
	return nil
}

// elem names element i of a request's list in errors ("success[3]"); it is
// formatted only when there is an error to report, as a command's every
// operation is validated on every replica.
type elem struct {
	list string
	i    int
}

func (e elem) String() string { return fmt.Sprintf("%s[%d]", e.list, e.i) }
