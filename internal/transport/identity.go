package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Identity is a node's Ed25519 key pair. The zero value is not usable; obtain
// one from GenerateIdentity, LoadOrCreateIdentity or IdentityFromHex.
type Identity struct {
	Key ed25519.PrivateKey
}

// GenerateIdentity returns a new random identity.
func GenerateIdentity() (Identity, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Identity{}, fmt.Errorf("generate ed25519 identity: %w", err)
	}
	return Identity{Key: key}, nil
}

// IdentityFromHex builds an identity from the hex encoding of a 32-byte
// Ed25519 seed (64 hex characters), as given to --secret-key.
func IdentityFromHex(seedHex string) (Identity, error) {
	s := strings.TrimSpace(seedHex)
	if len(s) != 2*ed25519.SeedSize {
		return Identity{}, fmt.Errorf("parse secret key: want %d hex characters (a %d-byte Ed25519 seed), got %d",
			2*ed25519.SeedSize, ed25519.SeedSize, len(s))
	}
	seed, err := hex.DecodeString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("parse secret key: not hex: %w", err)
	}
	return Identity{Key: ed25519.NewKeyFromSeed(seed)}, nil
}

// LoadOrCreateIdentity reads the identity stored at path, the hex encoding of
// its 32-byte seed followed by a newline. If the file does not exist, a new
// identity is generated and written there with mode 0600; the parent
// directory must exist. Creation uses O_EXCL, so two processes racing on the
// same path end up with the same identity.
func LoadOrCreateIdentity(path string) (Identity, error) {
	id, err := loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	id, err = GenerateIdentity()
	if err != nil {
		return Identity{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadIdentity(path) // lost a creation race
	}
	if err != nil {
		return Identity{}, fmt.Errorf("create identity file %s: %w", path, err)
	}
	_, werr := f.WriteString(hex.EncodeToString(id.Key.Seed()) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return Identity{}, fmt.Errorf("write identity file %s: %w", path, werr)
	}
	return id, nil
}

func loadIdentity(path string) (Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("read identity file %s: %w", path, err)
	}
	id, err := IdentityFromHex(string(b))
	if err != nil {
		return Identity{}, fmt.Errorf("identity file %s is corrupt: %w", path, err)
	}
	return id, nil
}

// Public returns the identity's public key.
func (id Identity) Public() PublicKey {
	var pk PublicKey
	if len(id.Key) == ed25519.PrivateKeySize {
		copy(pk[:], id.Key[ed25519.SeedSize:])
	}
	return pk
}

func (id Identity) valid() error {
	if len(id.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("identity key has %d bytes, want %d", len(id.Key), ed25519.PrivateKeySize)
	}
	return nil
}
