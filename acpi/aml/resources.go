package aml

// Resource descriptors for ResourceTemplate, laid out as QEMU's aml-build.c emits them
// (minimum lengths, no optional resource-source fields).

type ReadWrite byte

const (
	ReadOnly        ReadWrite = 0
	ReadWriteAccess ReadWrite = 1
)

// Memory32Fixed describes a fixed 32-bit memory range.
func Memory32Fixed(addr, size uint32, rw ReadWrite) *Term {
	t := raw(0x86, 9, 0, byte(rw))
	t.appendBytes(le(uint64(addr), 4)...)
	return t.appendBytes(le(uint64(size), 4)...)
}

// IODecode selects 16- or 10-bit decoding for IO descriptors.
type IODecode byte

const (
	Decode10 IODecode = 0
	Decode16 IODecode = 1
)

// IO is a fixed-or-range I/O port descriptor.
func IO(dec IODecode, min, max uint16, align, length byte) *Term {
	return raw(0x47, byte(dec), byte(min), byte(min>>8), byte(max), byte(max>>8), align, length)
}

// IRQNoFlags is the 2-byte IRQ descriptor for one ISA IRQ.
func IRQNoFlags(irq uint8) *Term {
	mask := uint16(1) << irq
	return raw(0x22, byte(mask), byte(mask>>8))
}

// IRQ is the 3-byte IRQ descriptor for one ISA IRQ: the mask plus an information byte
// (bit 0 edge, bit 3 active-low, bit 4 shared), as QEMU's aml_irq writes it.
func IRQ(le_ LevelEdge, pol Polarity, sh Sharing, irq uint8) *Term {
	mask := uint16(1) << irq
	return raw(0x23, byte(mask), byte(mask>>8), byte(le_)|byte(pol)<<3|byte(sh)<<4)
}

// Interrupt flags.
type ConsumerProducer byte

const (
	Producer ConsumerProducer = 0
	Consumer ConsumerProducer = 1
)

type LevelEdge byte

const (
	Level LevelEdge = 0
	Edge  LevelEdge = 1
)

type Polarity byte

const (
	ActiveHigh Polarity = 0
	ActiveLow  Polarity = 1
)

type Sharing byte

const (
	Exclusive Sharing = 0
	Shared    Sharing = 1
)

// Interrupt is the extended interrupt descriptor.
func Interrupt(cp ConsumerProducer, le_ LevelEdge, pol Polarity, sh Sharing, irqs ...uint32) *Term {
	n := 2 + 4*len(irqs)
	flags := byte(cp) | byte(le_)<<1 | byte(pol)<<2 | byte(sh)<<3
	t := raw(0x89, byte(n), byte(n>>8), flags, byte(len(irqs)))
	for _, irq := range irqs {
		t.appendBytes(le(uint64(irq), 4)...)
	}
	return t
}

// Address space descriptor fields.
type ResourceType byte

const (
	MemoryRange    ResourceType = 0
	IORange        ResourceType = 1
	BusNumberRange ResourceType = 2
)

type MinFixed byte
type MaxFixed byte
type Decode byte

const (
	MinNotFixed MinFixed = 0
	MinIsFixed  MinFixed = 1 << 2
	MaxNotFixed MaxFixed = 0
	MaxIsFixed  MaxFixed = 1 << 3
	PosDecode   Decode   = 0
	SubDecode   Decode   = 1 << 1
)

type ISARanges byte

const (
	ISAOnly     ISARanges = 1
	NonISAOnly  ISARanges = 2
	EntireRange ISARanges = 3
)

type Cacheable byte

const (
	NonCacheable   Cacheable = 0
	CacheableMem   Cacheable = 1
	WriteCombining Cacheable = 2
	Prefetchable   Cacheable = 3
)

func addrSpace(tag byte, length byte, typ ResourceType, minF MinFixed, maxF MaxFixed, dec Decode,
	typeFlags byte, width int, gran, min, max, trans, size uint64) *Term {
	t := raw(tag, length, 0, byte(typ), byte(maxF)|byte(minF)|byte(dec), typeFlags)
	for _, v := range []uint64{gran, min, max, trans, size} {
		t.appendBytes(le(v, width)...)
	}
	return t
}

func WordBusNumber(minF MinFixed, maxF MaxFixed, dec Decode, gran, min, max, trans, size uint16) *Term {
	return addrSpace(0x88, 0x0D, BusNumberRange, minF, maxF, dec, 0, 2,
		uint64(gran), uint64(min), uint64(max), uint64(trans), uint64(size))
}

func WordIO(minF MinFixed, maxF MaxFixed, dec Decode, isa ISARanges, gran, min, max, trans, size uint16) *Term {
	return addrSpace(0x88, 0x0D, IORange, minF, maxF, dec, byte(isa), 2,
		uint64(gran), uint64(min), uint64(max), uint64(trans), uint64(size))
}

func DWordIO(minF MinFixed, maxF MaxFixed, dec Decode, isa ISARanges, gran, min, max, trans, size uint32) *Term {
	return addrSpace(0x87, 23, IORange, minF, maxF, dec, byte(isa), 4,
		uint64(gran), uint64(min), uint64(max), uint64(trans), uint64(size))
}

func DWordMemory(dec Decode, minF MinFixed, maxF MaxFixed, c Cacheable, rw ReadWrite, gran, min, max, trans, size uint32) *Term {
	return addrSpace(0x87, 23, MemoryRange, minF, maxF, dec, byte(rw)|byte(c)<<1, 4,
		uint64(gran), uint64(min), uint64(max), uint64(trans), uint64(size))
}

func QWordMemory(dec Decode, minF MinFixed, maxF MaxFixed, c Cacheable, rw ReadWrite, gran, min, max, trans, size uint64) *Term {
	return addrSpace(0x8A, 0x2B, MemoryRange, minF, maxF, dec, byte(rw)|byte(c)<<1, 8,
		gran, min, max, trans, size)
}
