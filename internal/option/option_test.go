package option_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/option"
)

func TestErrorf(t *testing.T) {
	err := option.Errorf("WithDir(%q): %w", "/x", fs.ErrNotExist)
	require.ErrorIs(t, err, option.ErrInvalid)
	assert.ErrorIs(t, err, fs.ErrNotExist, "the format's %w is kept")
	assert.EqualError(t, err, `invalid option: WithDir("/x"): file does not exist`)
}

func TestWrap(t *testing.T) {
	assert.NoError(t, option.Wrap(nil))
	once := option.Wrap(errors.New("WithN(0): want at least 1"))
	assert.EqualError(t, once, "invalid option: WithN(0): want at least 1")
	assert.Same(t, once, option.Wrap(once), "wrapped once only")
}

func TestList(t *testing.T) {
	var l option.List
	require.NoError(t, l.Err("apply"), "empty")
	require.NoError(t, l.Err("apply", nil), "nil others are left out")
	l.Addf("Wait %v is negative", -1)
	l.Add(nil)
	l.Add(errors.New("Namespace \"A\": not a DNS label"))
	other := errors.New("no client")
	err := l.Err("apply", other)
	require.ErrorIs(t, err, option.ErrInvalid)
	assert.ErrorIs(t, err, other)
	assert.EqualError(t, err, "apply: invalid option: Wait -1 is negative\n"+
		"apply: invalid option: Namespace \"A\": not a DNS label\n"+
		"apply: no client")
	assert.EqualError(t, l.Err(""), "invalid option: Wait -1 is negative\n"+
		"invalid option: Namespace \"A\": not a DNS label")

	var only option.List
	assert.False(t, errors.Is(only.Err("x", other), option.ErrInvalid), "others alone are not invalid options")
}
