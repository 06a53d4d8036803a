// Package seal authenticates what shipkit writes into a cluster and later acts on
// (deploy/apply's rollback revisions, deploy/rollout's state): an HMAC-SHA256, with a
// key only the deployer holds, over a version tag, a purpose, the fields that bind
// the record to its place (namespace, name, ...) and the exact stored bytes. Anyone
// who can write the object can change it, but not produce a seal that verifies, so
// a forged, edited or moved record is refused before any of it is decoded.
//
// A seal says nothing about freshness: an older record sealed for the same place can
// be put back by someone who copied it. Callers limit what such a replay can do.
package seal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// MinKeySize is the shortest key a [Sealer] takes, in bytes: the HMAC-SHA256 block
// of security, 256 bits.
const MinKeySize = 32

// version prefixes every seal and starts every MAC's input, so that a later format
// can never be mistaken for this one.
const version = "v1"

var (
	// ErrKeyTooShort is returned by [New] for a key shorter than [MinKeySize].
	ErrKeyTooShort = fmt.Errorf("key shorter than %d bytes", MinKeySize)
	// ErrNoSeal is wrapped when a record carries no seal (written by a version of
	// shipkit that did not seal, or by someone else).
	ErrNoSeal = errors.New("no seal")
	// ErrMismatch is wrapped when a record's seal does not verify with the key: it
	// was written by someone else, edited, moved, or sealed with another key.
	ErrMismatch = errors.New("seal does not verify")
)

// Sealer seals and verifies records with one key. It never prints the key.
type Sealer struct {
	key []byte
}

// New returns a Sealer for key, which it copies. A key shorter than [MinKeySize]
// is refused with [ErrKeyTooShort].
func New(key []byte) (*Sealer, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("%w (got %d)", ErrKeyTooShort, len(key))
	}
	return &Sealer{key: append([]byte(nil), key...)}, nil
}

// Seal returns the seal of data for purpose and the binding fields.
func (s *Sealer) Seal(purpose string, fields []string, data []byte) string {
	return version + ":" + base64.RawURLEncoding.EncodeToString(s.mac(purpose, fields, data))
}

// Verify checks seal against data, purpose and fields. It returns nil when they
// match, else an error wrapping [ErrNoSeal] or [ErrMismatch]. The comparison takes
// the same time wherever the seal differs.
func (s *Sealer) Verify(purpose string, fields []string, data []byte, seal string) error {
	if seal == "" {
		return ErrNoSeal
	}
	v, enc, ok := strings.Cut(seal, ":")
	if !ok || v != version {
		return fmt.Errorf("%w: not a %s seal", ErrMismatch, version)
	}
	got, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || !hmac.Equal(got, s.mac(purpose, fields, data)) {
		return ErrMismatch
	}
	return nil
}

// mac computes the HMAC of the version, purpose, fields and data, each prefixed by
// its length so that no two inputs share an encoding.
func (s *Sealer) mac(purpose string, fields []string, data []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	write(h, []byte("shipkit.dev/seal/"+version))
	write(h, []byte(purpose))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(fields)))
	h.Write(n[:])
	for _, f := range fields {
		write(h, []byte(f))
	}
	write(h, data)
	return h.Sum(nil)
}

func write(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}
