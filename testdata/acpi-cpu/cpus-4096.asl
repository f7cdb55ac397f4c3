/*
 * Hand-written from QEMU's hw/acpi/cpu.c (build_cpus_aml) and hw/i386/acpi-common.c
 * (pc_madt_cpu_entry) for "-smp 4096" on q35 (QEMU >= 9.0 allows 4096 vCPUs), compiled with
 * ACPICA iasl as an encoder independent of package acpi/aml. No oracle DSDT goes past 256 vCPUs.
 *
 * - CPU_NAME_FMT "C%.03X": vCPU 4095 is CFFF, the last name that fits a NameSeg.
 * - APIC ID of vCPU i is i (one socket of 4096 cores, 12-bit core field, no gaps).
 * - acpi_1_compatible && arch_id < 255 gives Processor(Cxxx, i, 0, 0); from APIC ID 255 on it
 *   is Device(Cxxx) with _HID "ACPI0007" and _UID i.
 * - _MAT: Local APIC (type 0, len 8, uid, apic id, flags=1) below 255, Local x2APIC (type 9,
 *   len 16, reserved, x2apic id, flags=1, uid) from 255 on; flags forced to enabled.
 * - _EJ0 on every vCPU but first_cpu; no _PXM without -numa.
 * - CSCN scans while Local3 < arch_ids->len, here 0x1000.
 */
DefinitionBlock ("", "SSDT", 1, "DSTACK", "CPU4096", 1)
{
    Method (CSTA, 1, Serialized) { Return (Zero) }
    Method (CEJ0, 1, Serialized) { }
    Method (COST, 4, Serialized) { }

    /* vCPU 254: last Processor object, last xAPIC _MAT. */
    Processor (C0FE, 0xFE, 0x00000000, 0x00)
    {
        Method (_STA, 0, Serialized) { Return (CSTA (0xFE)) }
        Name (_MAT, Buffer (0x08) { 0x00, 0x08, 0xFE, 0xFE, 0x01, 0x00, 0x00, 0x00 })
        Method (_EJ0, 1, NotSerialized) { CEJ0 (0xFE) }
        Method (_OST, 3, Serialized) { COST (0xFE, Arg0, Arg1, Arg2) }
    }

    /* vCPU 255: APIC ID 255 is the xAPIC broadcast ID, so the first x2APIC Device. */
    Device (C0FF)
    {
        Name (_HID, "ACPI0007")
        Name (_UID, 0xFF)
        Method (_STA, 0, Serialized) { Return (CSTA (0xFF)) }
        Name (_MAT, Buffer (0x10)
        {
            0x09, 0x10, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00
        })
        Method (_EJ0, 1, NotSerialized) { CEJ0 (0xFF) }
        Method (_OST, 3, Serialized) { COST (0xFF, Arg0, Arg1, Arg2) }
    }

    /* vCPU 256: first uid that needs a WordConst. */
    Device (C100)
    {
        Name (_HID, "ACPI0007")
        Name (_UID, 0x0100)
        Method (_STA, 0, Serialized) { Return (CSTA (0x0100)) }
        Name (_MAT, Buffer (0x10)
        {
            0x09, 0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00
        })
        Method (_EJ0, 1, NotSerialized) { CEJ0 (0x0100) }
        Method (_OST, 3, Serialized) { COST (0x0100, Arg0, Arg1, Arg2) }
    }

    /* vCPU 4095: the last one, closing \_SB.CPUS. */
    Device (CFFF)
    {
        Name (_HID, "ACPI0007")
        Name (_UID, 0x0FFF)
        Method (_STA, 0, Serialized) { Return (CSTA (0x0FFF)) }
        Name (_MAT, Buffer (0x10)
        {
            0x09, 0x10, 0x00, 0x00, 0xFF, 0x0F, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00, 0xFF, 0x0F, 0x00, 0x00
        })
        Method (_EJ0, 1, NotSerialized) { CEJ0 (0x0FFF) }
        Method (_OST, 3, Serialized) { COST (0x0FFF, Arg0, Arg1, Arg2) }
    }

    /* CTFY's last test and CSCN's scan bound: arch_ids->len = 0x1000 (Local3 is uid). */
    Method (CTFY, 2, NotSerialized)
    {
        If ((Arg0 == 0x0FFF)) { Notify (CFFF, Arg1) }
    }
    Method (BND0, 0, NotSerialized)
    {
        Local0 = One
        Local3 = Zero
        While (((Local0 == One) && (Local3 < 0x1000))) { }
    }
}
