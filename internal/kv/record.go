package kv

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-dev/aspen/api"
	"github.com/fxamacker/cbor/v2"
)

// record is the stored form of one key. Integer map keys keep it small; the
// encoding is deterministic and a nil Value is stored as an empty byte string.
type record struct {
	Value          []byte `cbor:"1,keyasint"`
	Version        int64  `cbor:"2,keyasint"`
	CreateRevision uint64 `cbor:"3,keyasint"`
	ModRevision    uint64 `cbor:"4,keyasint"`
	ExpiresAtMs    int64  `cbor:"5,keyasint,omitempty"` // unix ms; 0 = never
}

var (
	recEnc = mustEncMode(func() cbor.EncOptions {
		o := cbor.CoreDetEncOptions()
		o.NilContainers = cbor.NilContainerAsEmpty
		return o
	}())
	recDec = mustDecMode(cbor.DecOptions{})
)

// live reports whether the record exists at nowMs (it has no expiry, or its
// expiry is still in the future).
func (r *record) live(nowMs int64) bool {
	return r.ExpiresAtMs == 0 || r.ExpiresAtMs > nowMs
}

// toKV returns the record as the wire type, copying key.
func (r *record) toKV(key []byte) api.KeyValue {
	v := r.Value
	if v == nil {
		v = []byte{}
	}
	return api.KeyValue{
		Key:            append([]byte(nil), key...),
		Value:          v,
		Version:        r.Version,
		CreateRevision: r.CreateRevision,
		ModRevision:    r.ModRevision,
		ExpiresAtMs:    r.ExpiresAtMs,
	}
}

func encodeRecord(r *record) ([]byte, error) {
	b, err := recEnc.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("kv: encode record: %w", err)
	}
	return b, nil
}

// decodeRecord decodes a stored record; the result does not alias b.
func decodeRecord(key, b []byte) (*record, error) {
	var r record
	if err := recDec.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("kv: decode record of key %q: %w", key, err)
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	return &r, nil
}

// ttlKey is the TTL index key of a record: 8-byte big-endian expiry, then the key.
// Expiries are always positive (NowMs >= 0 and TTLMs > 0), so byte order is
// time order.
func ttlKey(expiresAtMs int64, key []byte) []byte {
	b := make([]byte, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(expiresAtMs))
	copy(b[8:], key)
	return b
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
