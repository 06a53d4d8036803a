package gitops

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1" //nolint:gosec // a pack's trailer is its SHA-1, by Git's format
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// errBadPack says a pack is not one Git could have written; go-git would refuse
// it too, later.
var errBadPack = errors.New("gitops: malformed pack")

// checkPack reads the pack of size bytes in r once, holding one object's header
// at a time and inflating into nothing, and refuses it with ErrFetchTooLarge when
// it announces more than maxObjects objects or inflates to more than maxInflated
// bytes: the sum of its base objects' sizes, of its deltas' instructions and of
// the objects the deltas produce (which each delta declares in its first bytes).
// A declared size is counted before its object is inflated, and an object that
// inflates to more than it declares is counted by what it inflates to. The
// pack's trailing checksum is verified too.
func checkPack(r io.ReaderAt, size int64, maxObjects int, maxInflated int64) error {
	if size < 32 {
		return fmt.Errorf("%w: %d bytes", errBadPack, size)
	}
	h := sha1.New() //nolint:gosec // Git's format
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size-20)); err != nil {
		return err
	}
	trailer := make([]byte, 20)
	if _, err := r.ReadAt(trailer, size-20); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), trailer) {
		return fmt.Errorf("%w: checksum mismatch", errBadPack)
	}

	br := bufio.NewReader(io.NewSectionReader(r, 0, size-20))
	head := make([]byte, 12)
	if _, err := io.ReadFull(br, head); err != nil {
		return fmt.Errorf("%w: header: %w", errBadPack, err)
	}
	if string(head[:4]) != "PACK" {
		return fmt.Errorf("%w: no PACK signature", errBadPack)
	}
	count := binary.BigEndian.Uint32(head[8:])
	if int64(count) > int64(maxObjects) {
		return tooManyObjects(count, maxObjects)
	}
	c := &inflatedCount{max: maxInflated}
	var zr io.ReadCloser
	for i := range count {
		b, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: object %d: %w", errBadPack, i, err)
		}
		typ := (b >> 4) & 7
		sz := uint64(b & 15)
		for shift := uint(4); b&0x80 != 0; shift += 7 {
			if shift > 63 {
				return fmt.Errorf("%w: object %d: size overflows", errBadPack, i)
			}
			if b, err = br.ReadByte(); err != nil {
				return fmt.Errorf("%w: object %d: %w", errBadPack, i, err)
			}
			sz |= uint64(b&0x7f) << shift
		}
		switch typ {
		case 1, 2, 3, 4: // commit, tree, blob, tag
		case 6: // offset delta: a base offset
			for b = 0x80; b&0x80 != 0; {
				if b, err = br.ReadByte(); err != nil {
					return fmt.Errorf("%w: object %d: %w", errBadPack, i, err)
				}
			}
		case 7: // reference delta: a base hash
			if _, err := br.Discard(20); err != nil {
				return fmt.Errorf("%w: object %d: %w", errBadPack, i, err)
			}
		default:
			return fmt.Errorf("%w: object %d: type %d", errBadPack, i, typ)
		}
		// The declared size (an object's, or a delta's instructions') counts
		// before a byte of it is inflated.
		if err := c.add(sz); err != nil {
			return err
		}
		if zr == nil {
			zr, err = zlib.NewReader(br)
		} else {
			err = zr.(zlib.Resetter).Reset(br, nil)
		}
		if err != nil {
			return fmt.Errorf("%w: object %d: %w", errBadPack, i, err)
		}
		// The object may inflate to what it declared plus what is left of the
		// bound; one byte more is over it.
		limit := int64(sz) + c.left()
		lr := &io.LimitedReader{R: zr, N: limit + 1}
		if typ >= 6 {
			// A delta starts with its base's size and its result's size.
			dr := bufio.NewReaderSize(lr, 16)
			if _, err := readVarint(dr); err != nil {
				return fmt.Errorf("%w: object %d: delta: %w", errBadPack, i, err)
			}
			target, err := readVarint(dr)
			if err != nil {
				return fmt.Errorf("%w: object %d: delta: %w", errBadPack, i, err)
			}
			if err := c.add(target); err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, dr); err != nil {
				return fmt.Errorf("%w: object %d: %w", errBadPack, i, err)
			}
		} else if _, err := io.Copy(io.Discard, lr); err != nil {
			return fmt.Errorf("%w: object %d: %w", errBadPack, i, err)
		}
		read := limit + 1 - lr.N
		if read > limit {
			return c.over()
		}
		if uint64(read) > sz { // more than it declared
			if err := c.add(uint64(read) - sz); err != nil {
				return err
			}
		}
	}
	return nil
}

// inflatedCount is the running total of what a pack inflates to.
type inflatedCount struct{ n, max int64 }

func (c *inflatedCount) left() int64 { return c.max - c.n }

func (c *inflatedCount) add(n uint64) error {
	if n > uint64(c.left()) {
		return c.over()
	}
	c.n += int64(n)
	return nil
}

func (c *inflatedCount) over() error {
	return fmt.Errorf("%w: a pack inflating to more than %d bytes (WithMaxFetchInflatedBytes)", ErrFetchTooLarge, c.max)
}

// readVarint reads a delta header's little-endian base-128 size.
func readVarint(r io.ByteReader) (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift > 63 {
			return 0, errors.New("size overflows")
		}
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			return v, nil
		}
	}
}
