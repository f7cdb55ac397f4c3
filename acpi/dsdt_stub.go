package acpi

import "fmt"

// buildDSDT is a placeholder until the DSDT builder lands (its author deletes this file).
func buildDSDT(cfg *MachineConfig) ([]byte, error) {
	return nil, fmt.Errorf("DSDT: %w", ErrNotSupported)
}
