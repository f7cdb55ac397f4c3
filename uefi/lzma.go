package uefi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An LZMA ("alone" format) decoder that writes straight into the output slice: EDK2 firmware
// volumes are decompressed whole into memory, so the output itself is the dictionary, with no
// window to fill and copy out. Written from the LZMA specification (Igor Pavlov's
// lzma-specification.txt); it decodes exactly what the reference decoder does, which the tests
// check against an independent implementation on real firmware and fuzzed streams.

const (
	lzmaNumBitModelTotalBits = 11
	lzmaBitModelTotal        = 1 << lzmaNumBitModelTotalBits
	lzmaNumMoveBits          = 5
	lzmaProbInit             = lzmaBitModelTotal / 2

	lzmaNumStates          = 12
	lzmaNumPosBitsMax      = 4
	lzmaNumLenToPosStates  = 4
	lzmaNumAlignBits       = 4
	lzmaStartPosModelIndex = 4
	lzmaEndPosModelIndex   = 14
	lzmaNumFullDistances   = 1 << (lzmaEndPosModelIndex >> 1)
	lzmaMatchMinLen        = 2
	lzmaDictMin            = 1 << 12
)

var errLZMACorrupt = errors.New("corrupt LZMA data")

type lzmaRange struct {
	src        []byte
	pos        int
	rng, code  uint32
	overrunErr bool
}

func (r *lzmaRange) init(src []byte) error {
	if len(src) < 5 || src[0] != 0 {
		return fmt.Errorf("%w: bad range coder start", errLZMACorrupt)
	}
	r.src, r.pos, r.rng = src, 5, 0xFFFFFFFF
	r.code = binary.BigEndian.Uint32(src[1:5])
	if r.code == r.rng {
		return fmt.Errorf("%w: bad range coder start", errLZMACorrupt)
	}
	return nil
}

// next returns the next input byte; past the end it returns 0 and records the overrun, which
// the caller turns into an error (a valid stream never needs bytes it does not have).
func (r *lzmaRange) next() uint32 {
	if r.pos >= len(r.src) {
		r.overrunErr = true
		return 0
	}
	b := r.src[r.pos]
	r.pos++
	return uint32(b)
}

func (r *lzmaRange) bit(p *uint16) uint32 {
	bound := (r.rng >> lzmaNumBitModelTotalBits) * uint32(*p)
	var b uint32
	if r.code < bound {
		r.rng = bound
		*p += (lzmaBitModelTotal - *p) >> lzmaNumMoveBits
	} else {
		r.rng -= bound
		r.code -= bound
		*p -= *p >> lzmaNumMoveBits
		b = 1
	}
	if r.rng < 1<<24 {
		r.rng <<= 8
		r.code = r.code<<8 | r.next()
	}
	return b
}

func (r *lzmaRange) direct(n uint) uint32 {
	var res uint32
	for ; n > 0; n-- {
		r.rng >>= 1
		r.code -= r.rng
		t := 0 - (r.code >> 31)
		r.code += r.rng & t
		if r.code == r.rng {
			r.overrunErr = true // corrupted: the reference decoder flags it
		}
		res = res<<1 + t + 1
		if r.rng < 1<<24 {
			r.rng <<= 8
			r.code = r.code<<8 | r.next()
		}
	}
	return res
}

func (r *lzmaRange) tree(probs []uint16, bits uint) uint32 {
	m := uint32(1)
	for i := uint(0); i < bits; i++ {
		m = m<<1 + r.bit(&probs[m])
	}
	return m - 1<<bits
}

func (r *lzmaRange) reverseTree(probs []uint16, bits uint) uint32 {
	m, sym := uint32(1), uint32(0)
	for i := uint(0); i < bits; i++ {
		b := r.bit(&probs[m])
		m = m<<1 + b
		sym |= b << i
	}
	return sym
}

type lzmaLen struct {
	choice, choice2 uint16
	low, mid        [1 << lzmaNumPosBitsMax][1 << 3]uint16
	high            [1 << 8]uint16
}

func (l *lzmaLen) init() {
	l.choice, l.choice2 = lzmaProbInit, lzmaProbInit
	for i := range l.low {
		for j := range l.low[i] {
			l.low[i][j], l.mid[i][j] = lzmaProbInit, lzmaProbInit
		}
	}
	for i := range l.high {
		l.high[i] = lzmaProbInit
	}
}

func (l *lzmaLen) decode(r *lzmaRange, posState uint32) uint32 {
	if r.bit(&l.choice) == 0 {
		return r.tree(l.low[posState][:], 3)
	}
	if r.bit(&l.choice2) == 0 {
		return 8 + r.tree(l.mid[posState][:], 3)
	}
	return 16 + r.tree(l.high[:], 8)
}

// decodeLZMAAlone decodes an LZMA "alone" stream (properties byte, 32-bit dictionary size,
// 64-bit uncompressed size, then the range-coded data) whose declared size is known, and
// returns its first want bytes (want <= the declared size).
func decodeLZMAAlone(src []byte, want int) ([]byte, error) {
	if len(src) < 13 {
		return nil, fmt.Errorf("%w: header truncated", errLZMACorrupt)
	}
	d := uint32(src[0])
	if d >= 9*5*5 {
		return nil, fmt.Errorf("%w: properties byte %#x", errLZMACorrupt, d)
	}
	lc, lp, pb := d%9, (d/9)%5, d/45
	size := binary.LittleEndian.Uint64(src[5:13])
	if uint64(want) > size {
		return nil, fmt.Errorf("%w: %d bytes wanted of a %d-byte stream", errLZMACorrupt, want, size)
	}
	dict := binary.LittleEndian.Uint32(src[1:5])
	if dict < lzmaDictMin {
		dict = lzmaDictMin
	}
	var r lzmaRange
	if err := r.init(src[13:]); err != nil {
		return nil, err
	}

	out := make([]byte, want)
	var (
		literal     = make([]uint16, 0x300<<(lc+lp))
		isMatch     [lzmaNumStates << lzmaNumPosBitsMax]uint16
		isRep       [lzmaNumStates]uint16
		isRepG0     [lzmaNumStates]uint16
		isRepG1     [lzmaNumStates]uint16
		isRepG2     [lzmaNumStates]uint16
		isRep0Long  [lzmaNumStates << lzmaNumPosBitsMax]uint16
		posSlot     [lzmaNumLenToPosStates][1 << 6]uint16
		posDecoders [1 + lzmaNumFullDistances - lzmaEndPosModelIndex]uint16
		align       [1 << lzmaNumAlignBits]uint16
		lenDec      lzmaLen
		repLenDec   lzmaLen
	)
	for i := range literal {
		literal[i] = lzmaProbInit
	}
	for _, ps := range [][]uint16{isMatch[:], isRep[:], isRepG0[:], isRepG1[:], isRepG2[:], isRep0Long[:], posDecoders[:], align[:]} {
		for i := range ps {
			ps[i] = lzmaProbInit
		}
	}
	for i := range posSlot {
		for j := range posSlot[i] {
			posSlot[i][j] = lzmaProbInit
		}
	}
	lenDec.init()
	repLenDec.init()

	pbMask, lpMask := uint32(1)<<pb-1, uint32(1)<<lp-1
	var state, rep0, rep1, rep2, rep3 uint32
	pos := 0
	for pos < want {
		posState := uint32(pos) & pbMask
		if r.bit(&isMatch[state<<lzmaNumPosBitsMax+posState]) == 0 {
			var prev uint32
			if pos > 0 {
				prev = uint32(out[pos-1])
			}
			probs := literal[0x300*(((uint32(pos)&lpMask)<<lc)+prev>>(8-lc)):]
			sym := uint32(1)
			if state >= 7 {
				if uint32(pos) <= rep0 {
					return nil, fmt.Errorf("%w: match byte before the start", errLZMACorrupt)
				}
				match := uint32(out[pos-int(rep0)-1])
				for sym < 0x100 {
					mbit := (match >> 7) & 1
					match <<= 1
					b := r.bit(&probs[((1+mbit)<<8)+sym])
					sym = sym<<1 | b
					if mbit != b {
						break
					}
				}
			}
			for sym < 0x100 {
				sym = sym<<1 | r.bit(&probs[sym])
			}
			out[pos] = byte(sym)
			pos++
			switch {
			case state < 4:
				state = 0
			case state < 10:
				state -= 3
			default:
				state -= 6
			}
			continue
		}
		var n uint32
		if r.bit(&isRep[state]) != 0 {
			if pos == 0 {
				return nil, fmt.Errorf("%w: repeated match at the start", errLZMACorrupt)
			}
			if r.bit(&isRepG0[state]) == 0 {
				if r.bit(&isRep0Long[state<<lzmaNumPosBitsMax+posState]) == 0 {
					if state < 7 {
						state = 9
					} else {
						state = 11
					}
					out[pos] = out[pos-int(rep0)-1]
					pos++
					continue
				}
			} else {
				var dist uint32
				if r.bit(&isRepG1[state]) == 0 {
					dist = rep1
				} else {
					if r.bit(&isRepG2[state]) == 0 {
						dist = rep2
					} else {
						dist, rep3 = rep3, rep2
					}
					rep2 = rep1
				}
				rep1, rep0 = rep0, dist
			}
			n = repLenDec.decode(&r, posState)
			if state < 7 {
				state = 8
			} else {
				state = 11
			}
		} else {
			rep3, rep2, rep1 = rep2, rep1, rep0
			n = lenDec.decode(&r, posState)
			if state < 7 {
				state = 7
			} else {
				state = 10
			}
			lenState := min(n, lzmaNumLenToPosStates-1)
			slot := r.tree(posSlot[lenState][:], 6)
			if slot < lzmaStartPosModelIndex {
				rep0 = slot
			} else {
				bits := uint(slot>>1) - 1
				dist := (2 | slot&1) << bits
				if slot < lzmaEndPosModelIndex {
					dist += r.reverseTree(posDecoders[dist-slot:], bits)
				} else {
					dist += r.direct(bits-lzmaNumAlignBits) << lzmaNumAlignBits
					dist += r.reverseTree(align[:], lzmaNumAlignBits)
				}
				rep0 = dist
			}
			if rep0 == 0xFFFFFFFF {
				return nil, fmt.Errorf("%w: end marker after %d of %d bytes", errLZMACorrupt, pos, want)
			}
		}
		if rep0 >= dict || int64(rep0) >= int64(pos) {
			return nil, fmt.Errorf("%w: match distance %d at offset %d", errLZMACorrupt, rep0+1, pos)
		}
		length := int(n) + lzmaMatchMinLen
		if uint64(pos+length) > size {
			return nil, fmt.Errorf("%w: a match runs past the declared %d bytes", errLZMACorrupt, size)
		}
		from := pos - int(rep0) - 1
		end := min(pos+length, want)
		// Overlapping copies (distance shorter than the length) repeat the last bytes: byte
		// by byte is exactly that.
		if from+(end-pos) <= pos {
			copy(out[pos:end], out[from:])
			pos = end
		} else {
			for ; pos < end; pos++ {
				out[pos] = out[from]
				from++
			}
		}
		if r.overrunErr {
			break
		}
	}
	if r.overrunErr {
		return nil, fmt.Errorf("%w: compressed data ends early", errLZMACorrupt)
	}
	return out, nil
}
