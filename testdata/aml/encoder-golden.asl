DefinitionBlock ("", "SSDT", 1, "BOCHS ", "TEST", 1)
{
    Scope (\_SB)
    {
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A08"))
            Name (_UID, Zero)
            Name (BUF0, Buffer (0x04) { 0x01, 0x02, 0x03, 0x04 })
            Name (PKG0, Package (0x02) { One, 0x1234 })
            Name (CRS0, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0x0000, 0x0000, 0x00FF, 0x0000, 0x0100,,,)
                IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08, )
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0x00000000, 0x000A0000, 0x000BFFFF, 0x00000000, 0x00020000,,, , AddressRangeMemory, TypeStatic)
                QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0x0000000000000000, 0x0000000100000000, 0x00000008FFFFFFFF, 0x0000000000000000, 0x0000000800000000,,, , AddressRangeMemory, TypeStatic)
                IRQNoFlags () {4}
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared, ,, ) { 0x00000010, 0x00000011 }
            })
            OperationRegion (PCST, SystemIO, 0xAE00, 0x0C)
            Field (PCST, DWordAcc, NoLock, WriteAsZeros)
            {
                PCIU,   32, 
                Offset (0x08), 
                B0EJ,   32
            }
            Mutex (BLCK, 0x00)
            Method (PCEJ, 2, NotSerialized)
            {
                Acquire (BLCK, 0xFFFF)
                Store (And (Arg0, 0xFF), Local0)
                If ((Local0 == One))
                {
                    Notify (\_SB.PCI0, 0x03)
                }
                Else
                {
                    Store (ShiftLeft (Local0, 0x04), Local1)
                }
                Release (BLCK)
                Return (ToUUID ("33db4d5b-1ff7-401c-9657-7441c03dd766"))
            }
        }
    }
}
