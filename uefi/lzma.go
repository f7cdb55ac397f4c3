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

type lzmaRange struct {
	src        []byte // the compressed data followed by lzmaInputPad zero bytes
	end        int    // length of the real compressed data
	pos        int
	rng, code  uint32
	overrunErr bool
}

func (r *lzmaRange) init(data []byte) error {
	if len(data) < 5 || data[0] != 0 {
		return fmt.Errorf("%w: bad range coder start", errLZMACorrupt)
	}
	r.src = make([]byte, len(data)+lzmaInputPad)
	copy(r.src, data)
	r.end, r.pos, r.rng = len(data), 5, 0xFFFFFFFF
	r.code = binary.BigEndian.Uint32(data[1:5])
	if r.code == r.rng {
		return fmt.Errorf("%w: bad range coder start", errLZMACorrupt)
	}
	return nil
}

// overrun reports whether the decoder has read past the compressed data.
func (r *lzmaRange) overrun() bool { return r.pos > r.end || r.overrunErr }

// bit decodes one bit with probability *p. Small enough to be inlined in the decode loop.
func (r *lzmaRange) bit(p *lzmaProb) (b uint32) {
	bound := (r.rng >> lzmaNumBitModelTotalBits) * *p
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
		r.code = r.code<<8 | uint32(r.src[r.pos])
		r.pos++
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
			r.code = r.code<<8 | uint32(r.src[r.pos])
			r.pos++
		}
	}
	return res
}

func (r *lzmaRange) tree(probs []lzmaProb, bits uint) uint32 {
	m := uint32(1)
	for i := uint(0); i < bits; i++ {
		m = m<<1 + r.bit(&probs[m])
	}
	return m - 1<<bits
}

func (r *lzmaRange) reverseTree(probs []lzmaProb, bits uint) uint32 {
	m, sym := uint32(1), uint32(0)
	for i := uint(0); i < bits; i++ {
		b := r.bit(&probs[m])
		m = m<<1 + b
		sym |= b << i
	}
	return sym
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
		if r.overrun() {
			break
		}
		posState := uint32(pos) & pbMask
		if r.bit(&isMatch[state<<lzmaNumPosBitsMax+posState]) == 0 {
			var prev uint32
			if pos > 0 {
				prev = uint32(out[pos-1])
			}
			probs := literal[0x300*(((uint32(pos)&lpMask)<<lc)+prev>>(8-lc)):][:0x300]
			// The literal's bits are most of the decoding work: the range coder runs on
			// local copies here (the same arithmetic as bit), kept in registers.
			rng, code, ip, in := r.rng, r.code, r.pos, r.src
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
			r.rng, r.code, r.pos = rng, code, ip
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
	if r.overrun() {
		return nil, fmt.Errorf("%w: compressed data ends early", errLZMACorrupt)
	}
	return out, nil
}
