package auth

import (
	"bytes"
	"errors"
	"testing"
)

func TestDerive(t *testing.T) {
	a1, err := Derive("correct horse battery staple")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	a2, err := Derive("correct horse battery staple")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	b, err := Derive("another cookie")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}

	if a1.ClusterID != a2.ClusterID || !bytes.Equal(a1.Client, a2.Client) || !bytes.Equal(a1.Node, a2.Node) {
		t.Errorf("Derive not deterministic: %+v vs %+v", a1, a2)
	}
	if len(a1.ClusterID) != 32 {
		t.Errorf("len(ClusterID) = %d, want 32", len(a1.ClusterID))
	}
	if len(a1.Client) != 32 || len(a1.Node) != 32 {
		t.Errorf("secret lengths = %d/%d, want 32/32", len(a1.Client), len(a1.Node))
	}
	if bytes.Equal(a1.Client, a1.Node) {
		t.Error("client credential equals node secret")
	}
	if a1.ClusterID == b.ClusterID || bytes.Equal(a1.Client, b.Client) || bytes.Equal(a1.Node, b.Node) {
		t.Error("different cookies derived equal keys")
	}
}

func TestDeriveRejects(t *testing.T) {
	tests := []struct {
		name   string
		cookie string
		want   error
	}{
		{"empty", "", ErrEmptyCookie},
		{"unsafe default", UnsafeDefaultCookie, ErrUnsafeCookie},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Derive(tt.cookie)
			if !errors.Is(err, tt.want) {
				t.Errorf("Derive(%q) error = %v, want %v", tt.cookie, err, tt.want)
			}
		})
	}
}

func TestProof(t *testing.T) {
	keys, err := Derive("cookie")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	exporter := bytes.Repeat([]byte{7}, ExporterLen)
	otherExporter := bytes.Repeat([]byte{8}, ExporterLen)
	proof := Proof(keys.Node, exporter)
	if len(proof) != ProofLen {
		t.Fatalf("len(proof) = %d, want %d", len(proof), ProofLen)
	}

	tests := []struct {
		name     string
		secret   []byte
		exporter []byte
		mac      []byte
		want     bool
	}{
		{"valid", keys.Node, exporter, proof, true},
		{"other session", keys.Node, otherExporter, proof, false},
		{"other secret", keys.Client, exporter, proof, false},
		{"truncated", keys.Node, exporter, proof[:16], false},
		{"empty", keys.Node, exporter, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyProof(tt.secret, tt.exporter, tt.mac); got != tt.want {
				t.Errorf("VerifyProof = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCapability(t *testing.T) {
	keys, err := Derive("cookie")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	other, err := Derive("another cookie")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	tok := Capability(keys.Capability, "blob.read:aa", 1000)
	if len(tok) != ProofLen || !bytes.Equal(tok, Capability(keys.Capability, "blob.read:aa", 1000)) {
		t.Fatalf("Capability is not a deterministic %d-byte token: %x", ProofLen, tok)
	}
	for name, got := range map[string][]byte{
		"other scope":   Capability(keys.Capability, "blob.read:ab", 1000),
		"other expiry":  Capability(keys.Capability, "blob.read:aa", 1001),
		"no expiry":     Capability(keys.Capability, "blob.read:aa", 0),
		"other cluster": Capability(other.Capability, "blob.read:aa", 1000),
		"client key":    Capability(keys.Client, "blob.read:aa", 1000),
	} {
		if bytes.Equal(got, tok) {
			t.Errorf("%s: same token as the original", name)
		}
	}
	for _, secret := range [][]byte{keys.Client, keys.Node} {
		if bytes.Equal(secret, keys.Capability) {
			t.Error("capability key equals another secret")
		}
	}
}
