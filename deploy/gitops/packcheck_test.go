package gitops

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1" //nolint:gosec // Git's format
	"encoding/binary"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// packObject is one object of a hand-made pack: a type (1-4, or 6 for an
// offset delta on the object before it), the size its header declares, and
// the contents to deflate.
type packObject struct {
	typ  byte
	size uint64
	data []byte
}

func makePack(t *testing.T, objs ...packObject) []byte {
	t.Helper()
	var p bytes.Buffer
	p.WriteString("PACK")
	_ = binary.Write(&p, binary.BigEndian, uint32(2))
	_ = binary.Write(&p, binary.BigEndian, uint32(len(objs)))
	prev := 0
	for _, o := range objs {
		at := p.Len()
		sz := o.size
		b := o.typ<<4 | byte(sz&15)
		for sz >>= 4; sz > 0; sz >>= 7 {
			p.WriteByte(b | 0x80)
			b = byte(sz & 0x7f)
		}
		p.WriteByte(b)
		if o.typ == 6 { // the distance back to the previous object
			off := uint64(at - prev)
			enc := []byte{byte(off & 0x7f)}
			for off >>= 7; off > 0; off >>= 7 {
				off--
				enc = append([]byte{0x80 | byte(off&0x7f)}, enc...)
			}
			p.Write(enc)
		}
		zw := zlib.NewWriter(&p)
		_, err := zw.Write(o.data)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		prev = at
	}
	sum := sha1.Sum(p.Bytes()) //nolint:gosec // Git's format
	return append(p.Bytes(), sum[:]...)
}

func varint(v uint64) []byte {
	var b []byte
	for ; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

// TestCheckPackDelta: a delta of a few KiB whose copy instructions make a
// 16 MiB blob out of a 64 KiB one counts what it produces: refused under 8 MiB,
// and within 32 MiB it is a pack go-git stores, a 16 MiB blob.
func TestCheckPackDelta(t *testing.T) {
	base := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	const target = 16 << 20
	delta := append(varint(uint64(len(base))), varint(target)...)
	for range target / len(base) {
		// copy 64 KiB from offset 0: size 0x10000 is encoded as none.
		delta = append(delta, 0x80)
	}
	pack := makePack(t, packObject{3, uint64(len(base)), base}, packObject{6, uint64(len(delta)), delta})
	t.Logf("pack: %d bytes; the delta's instructions %d bytes", len(pack), len(delta))
	r := bytes.NewReader(pack)

	err := checkPack(r, r.Size(), 10, 8<<20)
	require.ErrorIs(t, err, ErrFetchTooLarge)
	assert.ErrorContains(t, err, "inflating to more than 8388608 bytes")

	require.NoError(t, checkPack(r, r.Size(), 10, 32<<20))
	s := memory.NewStorage()
	require.NoError(t, packfile.UpdateObjectStorage(s, bytes.NewReader(pack)))
	n := 0
	iter, err := s.IterEncodedObjects(plumbing.BlobObject)
	require.NoError(t, err)
	require.NoError(t, iter.ForEach(func(o plumbing.EncodedObject) error {
		if o.Size() == target {
			n++
		}
		return nil
	}))
	assert.Equal(t, 1, n, "go-git stores the 16 MiB blob the delta makes")

	assert.ErrorIs(t, checkPack(r, r.Size(), 1, 32<<20), ErrFetchTooLarge, "2 objects, more than 1")
}

// TestCheckPackUndeclared: an object that inflates to more than its header
// declares is counted by what it inflates to, and a pack that is not one
// (a wrong checksum, a bad type) is refused.
func TestCheckPackUndeclared(t *testing.T) {
	pack := makePack(t, packObject{3, 10, make([]byte, 16<<20)})
	r := bytes.NewReader(pack)
	err := checkPack(r, r.Size(), 10, 8<<20)
	require.ErrorIs(t, err, ErrFetchTooLarge)

	bad := bytes.Clone(pack)
	bad[len(bad)-1] ^= 1
	assert.ErrorIs(t, checkPack(bytes.NewReader(bad), int64(len(bad)), 10, 32<<20), errBadPack)
	bad = makePack(t, packObject{5, 1, []byte("x")})
	assert.ErrorIs(t, checkPack(bytes.NewReader(bad), int64(len(bad)), 10, 32<<20), errBadPack)
}
