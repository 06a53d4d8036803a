package seal_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy/internal/seal"
)

var key = bytes.Repeat([]byte{7}, seal.MinKeySize)

func TestSealVerifies(t *testing.T) {
	s, err := seal.New(key)
	require.NoError(t, err)
	fields := []string{"shop", "web"}
	data := []byte(`{"phase":"Progressing"}`)
	sealed := s.Seal("rollout-state", fields, data)
	require.NoError(t, s.Verify("rollout-state", fields, data, sealed))

	other, err := seal.New(bytes.Repeat([]byte{8}, seal.MinKeySize))
	require.NoError(t, err)
	for name, check := range map[string]error{
		"edited data":         s.Verify("rollout-state", fields, []byte(`{"phase":"Promoting"}`), sealed),
		"other namespace":     s.Verify("rollout-state", []string{"other", "web"}, data, sealed),
		"fields run together": s.Verify("rollout-state", []string{"shopweb", ""}, data, sealed),
		"other purpose":       s.Verify("apply-revision", fields, data, sealed),
		"other key":           other.Verify("rollout-state", fields, data, sealed),
		"garbage":             s.Verify("rollout-state", fields, data, "v1:!!"),
		"other version":       s.Verify("rollout-state", fields, data, "v0"+sealed[2:]),
	} {
		assert.ErrorIs(t, check, seal.ErrMismatch, name)
	}
	assert.ErrorIs(t, s.Verify("rollout-state", fields, data, ""), seal.ErrNoSeal)
}

func TestShortKeyRefused(t *testing.T) {
	_, err := seal.New(key[:seal.MinKeySize-1])
	require.ErrorIs(t, err, seal.ErrKeyTooShort)
	_, err = seal.New(nil)
	require.ErrorIs(t, err, seal.ErrKeyTooShort)
}

func TestKeyIsCopied(t *testing.T) {
	k := bytes.Clone(key)
	s, err := seal.New(k)
	require.NoError(t, err)
	sealed := s.Seal("p", nil, []byte("x"))
	k[0] ^= 1
	assert.NoError(t, s.Verify("p", nil, []byte("x"), sealed), "changing the caller's slice does not change the key")
}
