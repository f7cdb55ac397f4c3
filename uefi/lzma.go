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

// lzmaProb is a bit probability (11 bits); 32 bits wide so that the hot bit decoder needs no
// conversions and stays small enough to inline.
type lzmaProb = uint32

var errLZMACorrupt = errors.New("corrupt LZMA data")

// lzmaInputPad is how many zero bytes follow the compressed data in the decoder's copy of
// it: one main-loop step reads at most about 64 bytes, and the loop checks the position
// against the real end at every step, so normalizing never needs a bounds test of its own.
// Reading the padding is what the reference decoder's "input ends early" is.
const lzmaInputPad = 256

// lzmaRC is the range decoder's state. It is passed and returned by value (three scalars):
// the compiler keeps it in registers through the decode loop, where a pointer to it would
// make every bit a load and a store. The input it reads is passed alongside.
type lzmaRC struct {
	rng, code uint32
	pos       int
}

// padLZMAInput copies the range-coded data, followed by lzmaInputPad zero bytes.
func padLZMAInput(data []byte) []byte {
	in := make([]byte, len(data)+lzmaInputPad)
	copy(in, data)
	return in
}

func newLZMARC(data []byte) (lzmaRC, error) {
	if len(data) < 5 || data[0] != 0 {
		return lzmaRC{}, fmt.Errorf("%w: bad range coder start", errLZMACorrupt)
	}
	c := lzmaRC{rng: 0xFFFFFFFF, code: binary.BigEndian.Uint32(data[1:5]), pos: 5}
	if c.code == c.rng {
		return lzmaRC{}, fmt.Errorf("%w: bad range coder start", errLZMACorrupt)
	}
	return c, nil
}

// bit decodes one bit with probability *p. Small enough to be inlined in the decode loop.
func (c lzmaRC) bit(in []byte, p *lzmaProb) (lzmaRC, uint32) {
	var b uint32
	bound := (c.rng >> lzmaNumBitModelTotalBits) * *p
	if c.code < bound {
		c.rng = bound
		*p += (lzmaBitModelTotal - *p) >> lzmaNumMoveBits
	} else {
		c.rng -= bound
		c.code -= bound
		*p -= *p >> lzmaNumMoveBits
		b = 1
	}
	if c.rng < 1<<24 {
		c.rng <<= 8
		c.code = c.code<<8 | uint32(in[c.pos])
		c.pos++
	}
	return c, b
}

// direct decodes n bits of equal probability; corrupt reports the state the reference
// decoder flags as corrupted data.
func (c lzmaRC) direct(in []byte, n uint) (_ lzmaRC, res uint32, corrupt bool) {
	for ; n > 0; n-- {
		c.rng >>= 1
		c.code -= c.rng
		t := 0 - (c.code >> 31)
		c.code += c.rng & t
		if c.code == c.rng {
			corrupt = true
		}
		res = res<<1 + t + 1
		if c.rng < 1<<24 {
			c.rng <<= 8
			c.code = c.code<<8 | uint32(in[c.pos])
			c.pos++
		}
	}
	return c, res, corrupt
}

func (c lzmaRC) tree(in []byte, probs []lzmaProb, bits uint) (lzmaRC, uint32) {
	m := uint32(1)
	for i := uint(0); i < bits; i++ {
		var b uint32
		c, b = c.bit(in, &probs[m])
		m = m<<1 + b
	}
	return c, m - 1<<bits
}

func (c lzmaRC) reverseTree(in []byte, probs []lzmaProb, bits uint) (lzmaRC, uint32) {
	m, sym := uint32(1), uint32(0)
	for i := uint(0); i < bits; i++ {
		var b uint32
		c, b = c.bit(in, &probs[m])
		m = m<<1 + b
		sym |= b << i
	}
	return c, sym
}

type lzmaLen struct {
	choice, choice2 lzmaProb
	low, mid        [1 << lzmaNumPosBitsMax][1 << 3]lzmaProb
	high            [1 << 8]lzmaProb
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

func (l *lzmaLen) decode(c lzmaRC, in []byte, posState uint32) (lzmaRC, uint32) {
	var b, n uint32
	if c, b = c.bit(in, &l.choice); b == 0 {
		c, n = c.tree(in, l.low[posState][:], 3)
		return c, n
	}
	if c, b = c.bit(in, &l.choice2); b == 0 {
		c, n = c.tree(in, l.mid[posState][:], 3)
		return c, 8 + n
	}
	c, n = c.tree(in, l.high[:], 8)
	return c, 16 + n
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
	c, err := newLZMARC(src[13:])
	if err != nil {
		return nil, err
	}
	in, end := padLZMAInput(src[13:]), len(src)-13
	corrupt := false

	// 8 bytes of slack for the word-at-a-time match copy.
	out := make([]byte, want+8)[: want : want+8]
	var (
		literal     = make([]lzmaProb, 0x300<<(lc+lp))
		isMatch     [lzmaNumStates << lzmaNumPosBitsMax]lzmaProb
		isRep       [lzmaNumStates]lzmaProb
		isRepG0     [lzmaNumStates]lzmaProb
		isRepG1     [lzmaNumStates]lzmaProb
		isRepG2     [lzmaNumStates]lzmaProb
		isRep0Long  [lzmaNumStates << lzmaNumPosBitsMax]lzmaProb
		posSlot     [lzmaNumLenToPosStates][1 << 6]lzmaProb
		posDecoders [1 + lzmaNumFullDistances - lzmaEndPosModelIndex]lzmaProb
		align       [1 << lzmaNumAlignBits]lzmaProb
		lenDec      lzmaLen
		repLenDec   lzmaLen
	)
	for i := range literal {
		literal[i] = lzmaProbInit
	}
	for _, ps := range [][]lzmaProb{isMatch[:], isRep[:], isRepG0[:], isRepG1[:], isRepG2[:], isRep0Long[:], posDecoders[:], align[:]} {
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
		if c.pos > end || corrupt {
			break
		}
		posState := uint32(pos) & pbMask
		var b uint32
		if c, b = c.bit(in, &isMatch[state<<lzmaNumPosBitsMax+posState]); b == 0 {
			var prev uint32
			if pos > 0 {
				prev = uint32(out[pos-1])
			}
			probs := literal[0x300*(((uint32(pos)&lpMask)<<lc)+prev>>(8-lc)):][:0x300]
			// The literal's bits are most of the decoding work: the range coder runs on
			// local copies here (the same arithmetic as bit), kept in registers.
			rng, code, ip := c.rng, c.code, c.pos
			sym := uint32(1)
			if state >= 7 {
				if uint32(pos) <= rep0 {
					return nil, fmt.Errorf("%w: match byte before the start", errLZMACorrupt)
				}
				match := uint32(out[pos-int(rep0)-1])
				for sym < 0x100 {
					mbit := (match >> 7) & 1
					match <<= 1
					p := &probs[((1+mbit)<<8)+sym]
					v := *p
					bound := (rng >> lzmaNumBitModelTotalBits) * v
					b := uint32(0)
					if code < bound {
						rng = bound
						*p = v + (lzmaBitModelTotal-v)>>lzmaNumMoveBits
					} else {
						rng -= bound
						code -= bound
						*p = v - v>>lzmaNumMoveBits
						b = 1
					}
					if rng < 1<<24 {
						rng <<= 8
						code = code<<8 | uint32(in[ip])
						ip++
					}
					sym = sym<<1 | b
					if mbit != b {
						break
					}
				}
			}
			for sym < 0x100 {
				p := &probs[sym]
				v := *p
				bound := (rng >> lzmaNumBitModelTotalBits) * v
				if code < bound {
					rng = bound
					*p = v + (lzmaBitModelTotal-v)>>lzmaNumMoveBits
					sym <<= 1
				} else {
					rng -= bound
					code -= bound
					*p = v - v>>lzmaNumMoveBits
					sym = sym<<1 | 1
				}
				if rng < 1<<24 {
					rng <<= 8
					code = code<<8 | uint32(in[ip])
					ip++
				}
			}
			c = lzmaRC{rng: rng, code: code, pos: ip}
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
		if c, b = c.bit(in, &isRep[state]); b != 0 {
			if pos == 0 {
				return nil, fmt.Errorf("%w: repeated match at the start", errLZMACorrupt)
			}
			if c, b = c.bit(in, &isRepG0[state]); b == 0 {
				if c, b = c.bit(in, &isRep0Long[state<<lzmaNumPosBitsMax+posState]); b == 0 {
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
				if c, b = c.bit(in, &isRepG1[state]); b == 0 {
					dist = rep1
				} else {
					if c, b = c.bit(in, &isRepG2[state]); b == 0 {
						dist = rep2
					} else {
						dist, rep3 = rep3, rep2
					}
					rep2 = rep1
				}
				rep1, rep0 = rep0, dist
			}
			c, n = repLenDec.decode(c, in, posState)
			if state < 7 {
				state = 8
			} else {
				state = 11
			}
		} else {
			rep3, rep2, rep1 = rep2, rep1, rep0
			c, n = lenDec.decode(c, in, posState)
			if state < 7 {
				state = 7
			} else {
				state = 10
			}
			lenState := min(n, lzmaNumLenToPosStates-1)
			var slot uint32
			c, slot = c.tree(in, posSlot[lenState][:], 6)
			if slot < lzmaStartPosModelIndex {
				rep0 = slot
			} else {
				bits := uint(slot>>1) - 1
				dist := (2 | slot&1) << bits
				if slot < lzmaEndPosModelIndex {
					var v uint32
					c, v = c.reverseTree(in, posDecoders[dist-slot:], bits)
					dist += v
				} else {
					var hi, lo uint32
					var bad bool
					c, hi, bad = c.direct(in, bits-lzmaNumAlignBits)
					c, lo = c.reverseTree(in, align[:], lzmaNumAlignBits)
					corrupt = corrupt || bad
					dist += hi<<lzmaNumAlignBits + lo
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
		// An overlapping copy (distance shorter than the length) repeats the last rep0+1
		// bytes; copying the pattern written so far doubles it each round (runs of erased
		// flash, 0xFF at distance 1, are much of a firmware volume).
		switch dist := pos - from; {
		case dist >= 8:
			// Eight bytes at a time: each word read lies wholly before the write position,
			// so it holds final bytes. The last word may write up to 7 bytes past end, into
			// what later steps (or the slack after want) overwrite.
			for ; pos < end; pos, from = pos+8, from+8 {
				binary.LittleEndian.PutUint64(out[pos:pos+8], binary.LittleEndian.Uint64(out[from:from+8]))
			}
			pos = end
		case end-pos <= 16:
			for ; pos < end; pos, from = pos+1, from+1 {
				out[pos] = out[from]
			}
		default:
			// A long overlapping copy repeats the last dist bytes: copying the pattern
			// written so far doubles it each round (runs of erased flash, 0xFF at distance
			// 1, are much of a firmware volume).
			for pos < end {
				pos += copy(out[pos:end], out[from:pos])
			}
		}
	}
	if c.pos > end || corrupt {
		return nil, fmt.Errorf("%w: compressed data ends early", errLZMACorrupt)
	}
	return out, nil
}
