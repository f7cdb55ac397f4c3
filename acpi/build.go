package acpi

// Blobs are the three fw_cfg files the firmware measures into RTMR0.
type Blobs struct {
	Tables []byte       // etc/acpi/tables, zero padded to QEMU's fixed blob size
	RSDP   []byte       // etc/acpi/rsdp
	Loader []byte       // etc/table-loader, zero padded
	List   []TableEntry // where each table sits inside Tables
}

// TableEntry locates one ACPI table inside the tables blob.
type TableEntry struct {
	Signature string `json:"signature"`
	Offset    int    `json:"offset"`
	Length    int    `json:"length"`
}

// Build synthesizes the blobs QEMU generates for cfg.
func Build(cfg MachineConfig) (*Blobs, error) {
	return nil, ErrNotSupported
}
