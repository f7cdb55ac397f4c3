package aml

// Operators. Where QEMU passes a NULL target, the encoding carries a NullName (0x00), which
// is what a nil dst produces here.

func target(dst *Term) *Term {
	if dst == nil {
		return raw(0x00)
	}
	return dst
}

func op2dst(op byte, a, b, dst *Term) *Term { return opcode(op).Append(a, b, target(dst)) }

func Store(value, dst *Term) *Term         { return opcode(0x70).Append(value, dst) }
func Add(a, b, dst *Term) *Term            { return op2dst(0x72, a, b, dst) }
func Concatenate(a, b, dst *Term) *Term    { return op2dst(0x73, a, b, dst) }
func Subtract(a, b, dst *Term) *Term       { return op2dst(0x74, a, b, dst) }
func Increment(a *Term) *Term              { return opcode(0x75).Append(a) }
func Decrement(a *Term) *Term              { return opcode(0x76).Append(a) }
func Multiply(a, b, dst *Term) *Term       { return op2dst(0x77, a, b, dst) }
func ShiftLeft(a, count *Term) *Term       { return op2dst(0x79, a, count, nil) }
func ShiftRight(a, count, dst *Term) *Term { return op2dst(0x7A, a, count, dst) }
func And(a, b, dst *Term) *Term            { return op2dst(0x7B, a, b, dst) }
func Or(a, b, dst *Term) *Term             { return op2dst(0x7D, a, b, dst) }
func Xor(a, b, dst *Term) *Term            { return op2dst(0x7F, a, b, dst) }
func Not(a, dst *Term) *Term               { return opcode(0x80).Append(a, target(dst)) }
func RefOf(a *Term) *Term                  { return opcode(0x71).Append(a) }
func DerefOf(a *Term) *Term                { return opcode(0x83).Append(a) }
func Notify(obj, value *Term) *Term        { return opcode(0x86).Append(obj, value) }
func SizeOf(a *Term) *Term                 { return opcode(0x87).Append(a) }
func Index(a, idx *Term) *Term             { return op2dst(0x88, a, idx, nil) }
func ObjectType(a *Term) *Term             { return opcode(0x8E).Append(a) }
func LAnd(a, b *Term) *Term                { return opcode(0x90).Append(a, b) }
func LOr(a, b *Term) *Term                 { return opcode(0x91).Append(a, b) }
func LNot(a *Term) *Term                   { return opcode(0x92).Append(a) }
func LEqual(a, b *Term) *Term              { return opcode(0x93).Append(a, b) }
func LGreater(a, b *Term) *Term            { return opcode(0x94).Append(a, b) }
func LLess(a, b *Term) *Term               { return opcode(0x95).Append(a, b) }
func ToBuffer(a, dst *Term) *Term          { return opcode(0x96).Append(a, target(dst)) }
func ToDecimalString(a, dst *Term) *Term   { return opcode(0x97).Append(a, target(dst)) }
func ToHexString(a, dst *Term) *Term       { return opcode(0x98).Append(a, target(dst)) }
func ToInteger(a *Term) *Term              { return opcode(0x99).Append(a, raw(0x00)) }
func Mid(buf, idx, length, dst *Term) *Term {
	return opcode(0x9E).Append(buf, idx, length, target(dst))
}

// LGreaterEqual and LLessEqual are encoded as LNot of the opposite comparison.
func LGreaterEqual(a, b *Term) *Term { return opcode(0x92).appendBytes(0x95).Append(a, b) }
func LLessEqual(a, b *Term) *Term    { return opcode(0x92).appendBytes(0x94).Append(a, b) }

// Call invokes a method by name with arguments (QEMU aml_callN).
func Call(method string, args ...*Term) *Term { return Name("%s", method).Append(args...) }

// Sleep is Sleep(msec).
func Sleep(msec uint64) *Term { return raw(0x5B, 0x22).Append(Int(msec)) }

// Mutex declares a mutex with a sync level.
func Mutex(name string, syncLevel byte) *Term {
	return raw(0x5B, 0x01).appendBytes(NameString(name)...).appendBytes(syncLevel & 0x0F)
}

// Acquire waits for a mutex; timeout 0xFFFF waits forever.
func Acquire(mutex *Term, timeout uint16) *Term {
	return raw(0x5B, 0x23).Append(mutex).appendBytes(byte(timeout), byte(timeout>>8))
}

func Release(mutex *Term) *Term { return raw(0x5B, 0x27).Append(mutex) }

// Event declares an event object.
func Event(name string) *Term { return raw(0x5B, 0x02).appendBytes(NameString(name)...) }

// RegionSpace is an OperationRegion address space.
type RegionSpace byte

const (
	SystemMemory RegionSpace = 0x00
	SystemIO     RegionSpace = 0x01
	PCIConfig    RegionSpace = 0x02
)

// OperationRegion declares a region; offset is a term because QEMU passes computed names too.
func OperationRegion(name string, space RegionSpace, offset *Term, length uint64) *Term {
	t := raw(0x5B, 0x80).appendBytes(NameString(name)...).appendBytes(byte(space))
	return t.Append(offset, Int(length))
}

// Field access types, lock and update rules.
type AccessType byte

const (
	AnyAcc    AccessType = 0
	ByteAcc   AccessType = 1
	WordAcc   AccessType = 2
	DWordAcc  AccessType = 3
	QWordAcc  AccessType = 4
	BufferAcc AccessType = 5
)

type LockRule byte

const (
	NoLock LockRule = 0
	Lock   LockRule = 1
)

type UpdateRule byte

const (
	Preserve     UpdateRule = 0
	WriteAsOnes  UpdateRule = 1
	WriteAsZeros UpdateRule = 2
)

// Field declares a field list over a region; Append NamedField / ReservedField entries.
func Field(region string, access AccessType, lock LockRule, update UpdateRule) *Term {
	flags := byte(update)<<5 | byte(lock)<<4 | byte(access)
	return bundle(0x81, frameExtPackage).appendBytes(NameString(region)...).appendBytes(flags)
}

// NamedField is a field unit of bits bits.
func NamedField(name string, bits int) *Term {
	return raw(nameSeg(name)...).appendBytes(PkgLength(bits, false)...)
}

// ReservedField skips bits bits.
func ReservedField(bits int) *Term {
	return raw(0x00).appendBytes(PkgLength(bits, false)...)
}

func createField(op byte, src, index *Term, name string) *Term {
	return opcode(op).Append(src, index).appendBytes(NameString(name)...)
}

func CreateDWordField(src, index *Term, name string) *Term {
	return createField(0x8A, src, index, name)
}
func CreateQWordField(src, index *Term, name string) *Term {
	return createField(0x8F, src, index, name)
}

// CreateField creates a bit field of numBits bits at bitIndex.
func CreateField(src, bitIndex, numBits *Term, name string) *Term {
	return raw(0x5B, 0x13).Append(src, bitIndex, numBits).appendBytes(NameString(name)...)
}
