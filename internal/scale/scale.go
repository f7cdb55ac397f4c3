// Package scale reads the SCALE codec (Parity's Simple Concatenated Aggregate Little-Endian)
// that dstack's VersionedAttestation is written in, for both its TDX and its SEV-SNP variants:
// bounded reads that name the field they were reading when the input runs short.
package scale

import (
	"encoding/binary"
	"fmt"
)

// Reader reads SCALE values from a byte slice. Prefix starts every error ("attestation ").
type Reader struct {
	b      []byte
	off    int
	Prefix string
}

// NewReader reads b; errors start with prefix.
func NewReader(b []byte, prefix string) *Reader { return &Reader{b: b, Prefix: prefix} }

// Offset is how many bytes have been read.
func (r *Reader) Offset() int { return r.off }

// Remaining is how many bytes are left.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Take returns the next n bytes.
func (r *Reader) Take(n uint64, field string) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, fmt.Errorf("%s%s: truncated at offset %d (needs %d bytes)", r.Prefix, field, r.off, n)
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v, nil
}

// Compact decodes a compact integer: the low two bits select 1, 2 or 4 bytes, or a following
// little-endian integer of (upper six bits + 4) bytes, at most 8 here.
func (r *Reader) Compact(field string) (uint64, error) {
	b, err := r.Take(1, field)
	if err != nil {
		return 0, err
	}
	switch b[0] & 3 {
	case 0:
		return uint64(b[0] >> 2), nil
	case 1:
		c, err := r.Take(1, field)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint16([]byte{b[0], c[0]}) >> 2), nil
	case 2:
		c, err := r.Take(3, field)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint32([]byte{b[0], c[0], c[1], c[2]}) >> 2), nil
	}
	n := uint64(b[0]>>2) + 4
	if n > 8 {
		return 0, fmt.Errorf("%s%s: compact integer of %d bytes", r.Prefix, field, n)
	}
	c, err := r.Take(n, field)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := len(c) - 1; i >= 0; i-- {
		v = v<<8 | uint64(c[i])
	}
	return v, nil
}

// Bytes reads a length-prefixed byte string.
func (r *Reader) Bytes(field string) ([]byte, error) {
	n, err := r.Compact(field + " length")
	if err != nil {
		return nil, err
	}
	return r.Take(n, field)
}

// Count reads a sequence length, refusing one that could not fit in what is left (each item
// takes at least a byte), so a hostile count cannot drive an allocation.
func (r *Reader) Count(field string) (uint64, error) {
	n, err := r.Compact(field)
	if err == nil && n > uint64(len(r.b)-r.off) {
		err = fmt.Errorf("%s%s %d: beyond the input", r.Prefix, field, n)
	}
	return n, err
}

// U32 reads a little-endian uint32.
func (r *Reader) U32(field string) (uint32, error) {
	b, err := r.Take(4, field)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}
