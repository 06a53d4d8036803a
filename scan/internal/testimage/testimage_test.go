package testimage

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hostile entries are what archive/tar (and so stereoscope) reads back.
func TestTarHostileSizes(t *testing.T) {
	t.Run("sparse", func(t *testing.T) {
		const size = 1 << 40
		b := Tar(t, File{Name: "big", Typeflag: tar.TypeGNUSparse, Size: size, Body: []byte("tail")},
			File{Name: "after", Body: []byte("ok")})
		assert.Less(t, len(b), 8<<10, "a terabyte file takes a few blocks")
		tr := tar.NewReader(bytes.NewReader(b))
		h, err := tr.Next()
		require.NoError(t, err)
		assert.Equal(t, "big", h.Name)
		assert.EqualValues(t, size, h.Size)
		holes, err := tr.Read(make([]byte, 4096))
		require.NoError(t, err)
		assert.Equal(t, 4096, holes, "the hole reads as zeros")
		h, err = tr.Next()
		require.NoError(t, err)
		assert.Equal(t, "after", h.Name)

		small := Tar(t, File{Name: "s", Typeflag: tar.TypeGNUSparse, Size: 10, Body: []byte("tail")})
		tr = tar.NewReader(bytes.NewReader(small))
		_, err = tr.Next()
		require.NoError(t, err)
		got, err := io.ReadAll(tr)
		require.NoError(t, err)
		assert.Equal(t, "\x00\x00\x00\x00\x00\x00tail", string(got))
	})
	t.Run("header larger than body", func(t *testing.T) {
		b := Tar(t, File{Name: "liar", Size: 1 << 30, Body: []byte("short")}, File{Name: "swallowed", Body: []byte("x")})
		tr := tar.NewReader(bytes.NewReader(b))
		h, err := tr.Next()
		require.NoError(t, err)
		assert.EqualValues(t, 1<<30, h.Size)
		_, err = io.Copy(io.Discard, tr)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
	t.Run("header smaller than body", func(t *testing.T) {
		b := Tar(t, File{Name: "liar", Size: 3, Body: bytes.Repeat([]byte("A"), 2048)})
		tr := tar.NewReader(bytes.NewReader(b))
		_, err := tr.Next()
		require.NoError(t, err)
		_, err = tr.Next()
		require.ErrorIs(t, err, tar.ErrHeader)
	})
}
