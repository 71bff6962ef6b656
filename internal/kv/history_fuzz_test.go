package kv

import (
	"bytes"
	"testing"
)

// FuzzDecodeStoredEvent feeds arbitrary bytes to the decoder of the events
// bucket (what Store.Events reads back): it must not panic, and a decoded
// event must encode and decode again to the same event.
func FuzzDecodeStoredEvent(f *testing.F) {
	for _, se := range []storedEvent{
		{Kind: EventPut, Key: []byte("k"), Value: []byte("v")},
		{Kind: EventPut, Key: []byte("k"), Value: []byte("v2"), Prev: []byte("v"), HasPrev: true},
		{Kind: EventDelete, Key: []byte("gone"), Prev: []byte{}, HasPrev: true},
	} {
		b, err := recEnc.Marshal(&se)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x01, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // kind out of range
	f.Add([]byte{0xa1, 0x02, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // huge key length

	f.Fuzz(func(t *testing.T, in []byte) {
		var se storedEvent
		if recDec.Unmarshal(in, &se) != nil {
			return
		}
		_ = se.Kind.String()
		b, err := recEnc.Marshal(&se)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", se, err)
		}
		var again storedEvent
		if err := recDec.Unmarshal(b, &again); err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", se, err)
		}
		b2, err := recEnc.Marshal(&again)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed %+v into %+v (%v)", se, again, err)
		}
	})
}

// FuzzDecodeRecord feeds arbitrary bytes to the decoder of stored key
// records: no panic, a non-nil value, and a stable round trip.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []record{
		{Value: []byte("v"), Version: 1, CreateRevision: 2, ModRevision: 2},
		{Value: []byte{}, Version: 3, CreateRevision: 1, ModRevision: 9, ExpiresAtMs: 1 << 40},
	} {
		b, err := encodeRecord(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x02, 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // version below int64

	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decodeRecord([]byte("key"), in)
		if err != nil {
			return
		}
		if r.Value == nil {
			t.Fatalf("decoded record has a nil value")
		}
		_ = r.live(0)
		_ = r.toKV([]byte("key"))
		b, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", r, err)
		}
		again, err := decodeRecord([]byte("key"), b)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", r, err)
		}
		b2, err := encodeRecord(again)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed %+v into %+v (%v)", r, again, err)
		}
	})
}
