package uefi

import (
	"encoding/binary"
	"fmt"
)

// Variable store layout (MdeModulePkg/Include/Guid/VariableFormat.h).
const (
	varStoreHeaderLen  = 28 // Signature, Size, Format, State, Reserved, Reserved1
	varStoreFormatted  = 0x5A
	varStoreHealthy    = 0xFE
	varStartID         = 0x55AA
	varHeaderLen       = 32 // VARIABLE_HEADER
	authVarHeaderLen   = 60 // AUTHENTICATED_VARIABLE_HEADER (packed)
	varHeaderAlignment = 4  // HEADER_ALIGNMENT; names and data are unaligned on x86 (ALIGNMENT 1)

	// VarAdded is the State of a completely written, live variable.
	VarAdded = 0x3F
	// varAddedInDeletion is VAR_ADDED & VAR_IN_DELETED_TRANSITION: the old
	// copy while an update is in flight; live only if no VAR_ADDED copy exists.
	varAddedInDeletion = 0x3E
)

// Variable is one live variable from a non-volatile variable store.
type Variable struct {
	VendorGUID GUID   `json:"vendor_guid"`
	Name       string `json:"name"`
	Attributes uint32 `json:"attributes"`
	Data       []byte `json:"data"`
	// Authenticated-store header fields; zero in a plain store.
	MonotonicCount uint64   `json:"monotonic_count,omitempty"`
	TimeStamp      [16]byte `json:"-"` // EFI_TIME
	PubKeyIndex    uint32   `json:"pub_key_index,omitempty"`
}

// ReadVariables returns the live variables of a variable store. cfv is
// either the varstore firmware volume (OVMF's CFV: an FV with the NVRAM
// file-system GUID whose header is followed by the store) or a bare
// VARIABLE_STORE_HEADER and its contents. An erased (never formatted)
// store has no variables. Variables come in store order; one found only in
// the middle of an update (VAR_IN_DELETED_TRANSITION) comes after them.
func ReadVariables(cfv []byte) ([]Variable, error) {
	store, err := variableStore(cfv)
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, nil
	}
	return parseVariables(store)
}

// variableStore returns the formatted store (header through Size), or nil
// for an erased one.
func variableStore(b []byte) ([]byte, error) {
	if len(b) >= fvHeaderMinLen && string(b[fvSignatureOffset:fvSignatureOffset+4]) == "_FVH" {
		if fs := guidAt(b, 16); fs != NVRAMGUID {
			return nil, fmt.Errorf("uefi: CFV file system %s, want NVRAM %s", fs, NVRAMGUID)
		}
		length := binary.LittleEndian.Uint64(b[32:])
		hl := int(binary.LittleEndian.Uint16(b[48:]))
		if length > uint64(len(b)) {
			return nil, fmt.Errorf("uefi: CFV FvLength %#x exceeds the %#x bytes given", length, len(b))
		}
		if hl < fvHeaderMinLen || uint64(hl) > length {
			return nil, fmt.Errorf("uefi: CFV HeaderLength %d outside [%d, %#x]", hl, fvHeaderMinLen, length)
		}
		b = b[hl:length]
	}
	if len(b) < varStoreHeaderLen {
		return nil, fmt.Errorf("uefi: variable store header truncated: %d bytes", len(b))
	}
	if allBytes(b[:varStoreHeaderLen], 0xFF) {
		return nil, nil
	}
	sig := guidAt(b, 0)
	if sig != AuthenticatedVariableStoreGUID && sig != VariableStoreGUID {
		return nil, fmt.Errorf("uefi: variable store signature %s is neither %s nor %s",
			sig, AuthenticatedVariableStoreGUID, VariableStoreGUID)
	}
	size := binary.LittleEndian.Uint32(b[16:])
	if size < varStoreHeaderLen || uint64(size) > uint64(len(b)) {
		return nil, fmt.Errorf("uefi: variable store Size %#x outside [%d, %#x]", size, varStoreHeaderLen, len(b))
	}
	if b[20] != varStoreFormatted || b[21] != varStoreHealthy {
		return nil, fmt.Errorf("uefi: variable store Format %#x / State %#x, want %#x / %#x",
			b[20], b[21], varStoreFormatted, varStoreHealthy)
	}
	return b[:size], nil
}

func parseVariables(store []byte) ([]Variable, error) {
	auth := guidAt(store, 0) == AuthenticatedVariableStoreGUID
	hl := varHeaderLen
	if auth {
		hl = authVarHeaderLen
	}
	var live []Variable
	var transit []Variable
	for off := align(varStoreHeaderLen, varHeaderAlignment); off+hl <= len(store); {
		h := store[off : off+hl]
		if binary.LittleEndian.Uint16(h) != varStartID {
			break // end of the written part of the store
		}
		v, state, next, err := parseVariable(store, off, hl, auth)
		if err != nil {
			return nil, err
		}
		switch state {
		case VarAdded:
			live = append(live, v)
		case varAddedInDeletion:
			transit = append(transit, v)
		}
		off = next
	}
	// FindVariable in the variable driver prefers a VAR_ADDED copy and falls
	// back to one caught mid-update.
	for _, t := range transit {
		if FindVariable(live, t.VendorGUID, t.Name) == nil {
			live = append(live, t)
		}
	}
	return dedupe(live), nil
}

// parseVariable decodes the variable at off and returns the offset of the next.
func parseVariable(store []byte, off, hl int, auth bool) (Variable, uint8, int, error) {
	h := store[off : off+hl]
	state := h[2]
	var v Variable
	v.Attributes = binary.LittleEndian.Uint32(h[4:])
	p := 8
	if auth {
		v.MonotonicCount = binary.LittleEndian.Uint64(h[8:])
		copy(v.TimeStamp[:], h[16:32])
		v.PubKeyIndex = binary.LittleEndian.Uint32(h[32:])
		p = 36
	}
	nameSize := binary.LittleEndian.Uint32(h[p:])
	dataSize := binary.LittleEndian.Uint32(h[p+4:])
	v.VendorGUID = guidAt(h, p+8)
	// A header written without its sizes (power loss) has all-ones fields;
	// the variable driver treats them as zero-length.
	if state == 0xFF || nameSize == ^uint32(0) || dataSize == ^uint32(0) || v.Attributes == ^uint32(0) {
		nameSize, dataSize = 0, 0
	}
	rest := uint64(len(store) - off - hl)
	if uint64(nameSize)+uint64(dataSize) > rest {
		return v, 0, 0, fmt.Errorf("uefi: variable at store offset %#x: NameSize %#x + DataSize %#x exceed the %#x bytes left",
			off, nameSize, dataSize, rest)
	}
	nameOff := off + hl
	dataOff := nameOff + int(nameSize)
	v.Name = utf16z(store[nameOff:dataOff])
	v.Data = append([]byte(nil), store[dataOff:dataOff+int(dataSize)]...)
	return v, state, align(dataOff+int(dataSize), varHeaderAlignment), nil
}

// dedupe keeps the first copy of each (GUID, name); a well-formed store
// has one live copy, so later ones can only be leftovers.
func dedupe(vs []Variable) []Variable {
	out := vs[:0]
	for _, v := range vs {
		if FindVariable(out, v.VendorGUID, v.Name) == nil {
			out = append(out, v)
		}
	}
	return out
}

// FindVariable returns the variable with that vendor GUID and name, or nil.
func FindVariable(vars []Variable, guid GUID, name string) *Variable {
	for i := range vars {
		if vars[i].VendorGUID == guid && vars[i].Name == name {
			return &vars[i]
		}
	}
	return nil
}

// UTF16LE encodes a variable name as UEFI stores and measures it, without
// the terminating NUL (UEFI_VARIABLE_DATA.UnicodeName).
func UTF16LE(s string) []byte {
	b := utf16zEncode(s)
	return b[:len(b)-2]
}

// VariableStoreVolume returns the first top-level NVRAM firmware volume of
// a flash image: the CFV that ReadVariables takes.
func VariableStoreVolume(image []byte) ([]byte, error) {
	fw, err := Parse(image)
	if err != nil {
		return nil, err
	}
	return fw.VariableStoreVolume()
}

// VariableStoreVolume returns the first top-level NVRAM volume's bytes.
func (fw *Firmware) VariableStoreVolume() ([]byte, error) {
	for _, v := range fw.Volumes {
		if v.Depth == 0 && v.FileSystem == NVRAMGUID {
			return v.Data, nil
		}
	}
	return nil, fmt.Errorf("uefi: no NVRAM (%s) firmware volume in the image", NVRAMGUID)
}

// Variable header states PlatformValidateNvVarStore accepts: VAR_HEADER_VALID_ONLY, VAR_ADDED
// and VAR_ADDED combined with VAR_DELETED and/or VAR_IN_DELETED_TRANSITION.
var copyableVarStates = map[uint8]bool{0x7F: true, 0x3F: true, 0x3D: true, 0x3E: true, 0x3C: true}

// nvStoreFVAttributes is the only EFI_FVB_ATTRIBUTES_2 value OVMF accepts for the CFV.
const nvStoreFVAttributes = 0x4FEFF

// ValidateCFVForEmulatedStore applies the checks OVMF's PlatformValidateNvVarStore makes
// before Secure Boot builds copy the CFV into the TD's emulated variable store (the store
// is used only when they pass; a release build otherwise boots with an empty one). cfv is
// the CFV section's raw data: its FvLength must cover exactly that.
func ValidateCFVForEmulatedStore(cfv []byte) error {
	if len(cfv) < fvHeaderMinLen {
		return fmt.Errorf("uefi: CFV is %d bytes, shorter than a firmware volume header", len(cfv))
	}
	le := binary.LittleEndian
	hl := int(le.Uint16(cfv[48:]))
	switch {
	case !allBytes(cfv[:16], 0):
		return fmt.Errorf("uefi: CFV ZeroVector is not zero")
	case guidAt(cfv, 16) != NVRAMGUID:
		return fmt.Errorf("uefi: CFV FileSystemGuid %s, want %s", guidAt(cfv, 16), NVRAMGUID)
	case string(cfv[fvSignatureOffset:fvSignatureOffset+4]) != "_FVH":
		return fmt.Errorf("uefi: CFV Signature %q, want \"_FVH\"", cfv[fvSignatureOffset:fvSignatureOffset+4])
	case le.Uint32(cfv[44:]) != nvStoreFVAttributes:
		return fmt.Errorf("uefi: CFV Attributes %#x, want %#x", le.Uint32(cfv[44:]), nvStoreFVAttributes)
	case hl%2 != 0 || hl < fvHeaderMinLen:
		return fmt.Errorf("uefi: CFV HeaderLength %d", hl)
	case cfv[55] != 2:
		return fmt.Errorf("uefi: CFV Revision %d, want 2", cfv[55])
	case le.Uint64(cfv[32:]) != uint64(len(cfv)):
		return fmt.Errorf("uefi: CFV FvLength %#x, want the CFV section's size %#x", le.Uint64(cfv[32:]), len(cfv))
	case hl+varStoreHeaderLen > len(cfv):
		return fmt.Errorf("uefi: CFV HeaderLength %d leaves no room for the variable store header", hl)
	case checksum16(cfv[:hl]) != 0:
		return fmt.Errorf("uefi: CFV header checksum does not sum to zero")
	}
	store := cfv[hl:]
	size := int64(le.Uint32(store[16:]))
	switch {
	case guidAt(store, 0) != AuthenticatedVariableStoreGUID:
		return fmt.Errorf("uefi: variable store signature %s, want the authenticated store %s", guidAt(store, 0), AuthenticatedVariableStoreGUID)
	case store[20] != varStoreFormatted || store[21] != varStoreHealthy:
		return fmt.Errorf("uefi: variable store Format %#x / State %#x, want %#x / %#x", store[20], store[21], varStoreFormatted, varStoreHealthy)
	case size > int64(len(store)) || size < varStoreHeaderLen:
		return fmt.Errorf("uefi: variable store Size %#x outside [%d, %#x]", size, varStoreHeaderLen, len(store))
	}
	vars := store[varStoreHeaderLen:size]
	for off := 0; off < len(vars); {
		if off+2 > len(vars) || le.Uint16(vars[off:]) != varStartID {
			if !allBytes(vars[off:], 0xFF) {
				return fmt.Errorf("uefi: variable store offset %#x: neither a variable header nor erased space", varStoreHeaderLen+off)
			}
			break
		}
		if off+authVarHeaderLen > len(vars) {
			return fmt.Errorf("uefi: variable header at store offset %#x is cut off", varStoreHeaderLen+off)
		}
		h := vars[off:]
		if !copyableVarStates[h[2]] {
			return fmt.Errorf("uefi: variable at store offset %#x has State %#x", varStoreHeaderLen+off, h[2])
		}
		end := int64(off) + authVarHeaderLen + int64(le.Uint32(h[36:])) + int64(le.Uint32(h[40:]))
		if end > int64(len(vars)) {
			return fmt.Errorf("uefi: variable at store offset %#x runs past the store's Size", varStoreHeaderLen+off)
		}
		next := align(int(end), varHeaderAlignment)
		if !allBytes(vars[end:min(next, len(vars))], 0xFF) {
			return fmt.Errorf("uefi: variable at store offset %#x: alignment padding is not erased", varStoreHeaderLen+off)
		}
		off = next
	}
	return nil
}
