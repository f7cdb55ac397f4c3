// Package aml encodes ACPI Machine Language the way QEMU's hw/acpi/aml-build.c does.
//
// Byte-exactness with QEMU matters more than elegance here: QEMU picks specific encodings
// where AML allows several (integer prefixes, PkgLength sizes, NullName targets, how a
// ResourceTemplate is closed), so this package mirrors its object model. A Term is a byte
// buffer plus a framing rule that is applied when the Term is appended to its parent, exactly
// like QEMU's Aml and aml_append(). Builders in package acpi can then be read side by side
// with QEMU's C, call for call.
package aml

import (
	"fmt"
	"strings"
)

type framing int

const (
	frameNone        framing = iota // raw bytes (names, integers, descriptors)
	frameOpcode                     // one opcode byte, then the payload
	framePackage                    // opcode, PkgLength, payload
	frameExtPackage                 // ExtOpPrefix, opcode, PkgLength, payload
	frameBuffer                     // BufferOp, PkgLength, BufferSize, payload
	frameResTemplate                // like frameBuffer, after appending an EndTag
)

// Term is one AML object under construction.
type Term struct {
	op    byte
	frame framing
	buf   []byte
}

func raw(b ...byte) *Term                   { return &Term{frame: frameNone, buf: b} }
func opcode(op byte) *Term                  { return &Term{op: op, frame: frameOpcode} }
func bundle(op byte, f framing) *Term       { return &Term{op: op, frame: f} }
func (t *Term) appendBytes(b ...byte) *Term { t.buf = append(t.buf, b...); return t }

// Append adds children to t in order, framing each as QEMU's aml_append does, and returns t.
func (t *Term) Append(children ...*Term) *Term {
	for _, c := range children {
		if c != nil {
			t.buf = c.appendFramed(t.buf)
		}
	}
	return t
}

// Bytes returns t framed, as it would appear inside its parent.
func (t *Term) Bytes() []byte { return t.appendFramed(nil) }

// Payload returns t's contents without its own framing (QEMU's Aml->buf). Table builders
// use it for the root definition block, whose bytes follow the table header directly.
func (t *Term) Payload() []byte { return t.buf }

// appendFramed appends t, framed, to dst. Writing straight into the parent's buffer keeps a
// large DSDT (thousands of CPU objects) from allocating a temporary slice per term.
func (t *Term) appendFramed(dst []byte) []byte {
	switch t.frame {
	case frameNone:
		return append(dst, t.buf...)
	case frameOpcode:
		return append(append(dst, t.op), t.buf...)
	case framePackage:
		dst = appendPkgLength(append(dst, t.op), len(t.buf), true)
		return append(dst, t.buf...)
	case frameExtPackage:
		dst = appendPkgLength(append(dst, 0x5B, t.op), len(t.buf), true)
		return append(dst, t.buf...)
	case frameBuffer, frameResTemplate:
		var tail []byte
		if t.frame == frameResTemplate {
			tail = []byte{0x79, 0} // EndTag, checksum 0 = "valid"
		}
		size := encodeInt(uint64(len(t.buf) + len(tail)))
		dst = appendPkgLength(append(dst, t.op), len(size)+len(t.buf)+len(tail), true)
		dst = append(append(dst, size...), t.buf...)
		return append(dst, tail...)
	}
	panic("aml: unknown framing")
}

// PkgLength encodes an AML PkgLength for a body of n bytes. inclSelf adds the encoding's own
// size, as terms with explicit length require; NamedField lengths do not.
func PkgLength(n int, inclSelf bool) []byte { return appendPkgLength(nil, n, inclSelf) }

func appendPkgLength(dst []byte, n int, inclSelf bool) []byte {
	var size int
	switch {
	case n+1 < 1<<6:
		size = 1
	case n+2 < 1<<12:
		size = 2
	case n+3 < 1<<20:
		size = 3
	default:
		size = 4
	}
	if inclSelf {
		n += size
	}
	if size == 1 {
		return append(dst, byte(n))
	}
	dst = append(dst, byte((size-1)<<6)|byte(n&0x0F))
	n >>= 4
	for i := 1; i < size; i++ {
		dst = append(dst, byte(n))
		n >>= 8
	}
	return dst
}

func encodeInt(v uint64) []byte { return appendInt(nil, v) }

func appendInt(dst []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(dst, 0x00) // ZeroOp
	case v == 1:
		return append(dst, 0x01) // OneOp
	case v <= 0xFF:
		return append(dst, 0x0A, byte(v))
	case v <= 0xFFFF:
		return appendLE(append(dst, 0x0B), v, 2)
	case v <= 0xFFFFFFFF:
		return appendLE(append(dst, 0x0C), v, 4)
	default:
		return appendLE(append(dst, 0x0E), v, 8)
	}
}

func appendLE(dst []byte, v uint64, n int) []byte {
	for i := 0; i < n; i++ {
		dst = append(dst, byte(v))
		v >>= 8
	}
	return dst
}

func le(v uint64, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(v)
		v >>= 8
	}
	return out
}

// NameString encodes an ASL name path ("\\_SB.PCI0", "^BSEL", "S00", "") as QEMU does: root
// and parent prefixes first, then one segment, a DualNamePrefix pair or a MultiNamePrefix run;
// segments shorter than four characters are padded with '_'.
func NameString(path string) []byte { return appendNameString(nil, path) }

func appendNameString(dst []byte, path string) []byte {
	i := 0
	for i < len(path) && (path[i] == '\\' || path[i] == '^') {
		dst = append(dst, path[i])
		i++
	}
	rest := path[i:]
	if rest == "" {
		return append(dst, 0x00) // NullName
	}
	segs := strings.Count(rest, ".") + 1
	switch {
	case segs == 1:
	case segs == 2:
		dst = append(dst, 0x2E)
	case segs <= 255:
		dst = append(dst, 0x2F, byte(segs))
	default:
		panic(fmt.Sprintf("aml: name %q has too many segments", path))
	}
	for {
		seg := rest
		dot := strings.IndexByte(rest, '.')
		if dot >= 0 {
			seg, rest = rest[:dot], rest[dot+1:]
		}
		dst = appendNameSeg(dst, seg)
		if dot < 0 {
			return dst
		}
	}
}

func nameSeg(s string) []byte { return appendNameSeg(nil, s) }

func appendNameSeg(dst []byte, s string) []byte {
	if len(s) > 4 || len(s) == 0 {
		panic(fmt.Sprintf("aml: bad name segment %q", s))
	}
	dst = append(dst, s...)
	for i := len(s); i < 4; i++ {
		dst = append(dst, '_')
	}
	return dst
}

// Name is a reference to a named object (QEMU aml_name).
func Name(format string, a ...any) *Term { return raw(NameString(fmt.Sprintf(format, a...))...) }

// Int is an integer constant with QEMU's choice of Zero/One/Byte/Word/DWord/QWord encoding.
func Int(v uint64) *Term { return &Term{frame: frameNone, buf: appendInt(nil, v)} }

// String is a NUL-terminated ASCII string constant.
func String(format string, a ...any) *Term {
	s := fmt.Sprintf(format, a...)
	return opcode(0x0D).appendBytes(append([]byte(s), 0)...)
}

// Arg and Local are ArgN / LocalN.
func Arg(n int) *Term   { return opcode(0x68 + byte(n)) }
func Local(n int) *Term { return opcode(0x60 + byte(n)) }

// Debug is the Debug object.
func Debug() *Term { return raw(0x5B, 0x31) }

// Scope, Device, Method, If, Else, While: containers; Append their bodies.
func Scope(format string, a ...any) *Term {
	return bundle(0x10, framePackage).appendBytes(NameString(fmt.Sprintf(format, a...))...)
}

func Device(format string, a ...any) *Term {
	return bundle(0x82, frameExtPackage).appendBytes(NameString(fmt.Sprintf(format, a...))...)
}

// Method declares a control method; serialized sets the SerializeFlag.
func Method(name string, args int, serialized bool) *Term {
	flags := byte(args & 7)
	if serialized {
		flags |= 1 << 3
	}
	return bundle(0x14, framePackage).appendBytes(NameString(name)...).appendBytes(flags)
}

func If(pred *Term) *Term    { return bundle(0xA0, framePackage).Append(pred) }
func Else() *Term            { return bundle(0xA1, framePackage) }
func While(pred *Term) *Term { return bundle(0xA2, framePackage).Append(pred) }
func Break() *Term           { return opcode(0xA5) }

// Processor is the deprecated ProcessorOp object QEMU still emits for some CPUs.
func Processor(procID byte, pblkAddr uint32, pblkLen byte, format string, a ...any) *Term {
	t := bundle(0x83, frameExtPackage).appendBytes(NameString(fmt.Sprintf(format, a...))...)
	t.appendBytes(procID)
	t.appendBytes(le(uint64(pblkAddr), 4)...)
	return t.appendBytes(pblkLen)
}

// NameDecl is Name(name, value).
func NameDecl(name string, value *Term) *Term {
	return opcode(0x08).appendBytes(NameString(name)...).Append(value)
}

// Alias is Alias(source, alias).
func Alias(source, alias string) *Term {
	return opcode(0x06).Append(Name("%s", source), Name("%s", alias))
}

func Return(v *Term) *Term { return opcode(0xA4).Append(v) }

// Buffer is a buffer initialized with data (QEMU aml_buffer with a byte list).
func Buffer(data []byte) *Term {
	return bundle(0x11, frameBuffer).appendBytes(data...)
}

// Package starts a fixed-size package of n elements; Append the elements.
func Package(n byte) *Term { return bundle(0x12, framePackage).appendBytes(n) }

// VarPackage starts a variable-size package.
func VarPackage(n uint32) *Term {
	return bundle(0x13, framePackage).appendBytes(encodeInt(uint64(n))...)
}

// ResourceTemplate starts a resource template buffer; Append descriptors. The EndTag is added
// when the template is framed.
func ResourceTemplate() *Term { return bundle(0x11, frameResTemplate) }

// ToUUID encodes a UUID string as the 16-byte buffer ASL's ToUUID produces.
func ToUUID(uuid string) *Term {
	if len(uuid) != 36 || uuid[8] != '-' || uuid[13] != '-' || uuid[18] != '-' || uuid[23] != '-' {
		panic(fmt.Sprintf("aml: bad UUID %q", uuid))
	}
	order := []int{6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34}
	b := make([]byte, 16)
	for i, off := range order {
		b[i] = hexByte(uuid[off:])
	}
	return Buffer(b)
}

// Unicode encodes an ASCII string as a UTF-16LE buffer including the terminating NUL.
func Unicode(s string) *Term {
	b := make([]byte, 0, 2*len(s)+2)
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return Buffer(append(b, 0, 0))
}

func hexDigit(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	panic(fmt.Sprintf("aml: bad hex digit %q", c))
}

func hexByte(s string) byte { return hexDigit(s[0])<<4 | hexDigit(s[1]) }

// EISAID compresses a 7-character PNP id ("PNP0A03") into the DWord ASL's EISAID produces.
func EISAID(id string) *Term {
	if len(id) != 7 {
		panic(fmt.Sprintf("aml: bad EISA id %q", id))
	}
	v := uint32(id[0]-0x40)<<26 | uint32(id[1]-0x40)<<21 | uint32(id[2]-0x40)<<16 |
		uint32(hexDigit(id[3]))<<12 | uint32(hexDigit(id[4]))<<8 |
		uint32(hexDigit(id[5]))<<4 | uint32(hexDigit(id[6]))
	// Stored big-endian: the compressed id reads left to right in memory.
	return raw(0x0C, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
