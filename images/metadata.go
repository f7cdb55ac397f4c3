package images

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// MetadataFileName is the name dstack gives the image description in a release.
const MetadataFileName = "metadata.json"

// Metadata holds every metadata.json field known across dstack releases (dstack-types
// ImageInfo, dstack-vmm's image loader and the image build scripts since 2024).
// Fields a release does not carry are left zero; fields nobody knows are listed in
// Unknown and otherwise ignored.
type Metadata struct {
	Bios    string `json:"bios"`
	BiosSEV string `json:"bios-sev,omitempty"` // AMD SEV firmware on unified TDX+SEV images
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline"`
	Rootfs  string `json:"rootfs,omitempty"`
	Hda     string `json:"hda,omitempty"`
	// RootfsHash: releases up to early 2025 recorded the SHA-256 of rootfs.iso here.
	RootfsHash  string `json:"rootfs_hash,omitempty"`
	Version     string `json:"version,omitempty"`
	GitRevision string `json:"git_revision,omitempty"`
	SharedRO    bool   `json:"shared_ro"`
	IsDev       bool   `json:"is_dev"`
	OVMFVariant string `json:"ovmf_variant,omitempty"`
	// KernelHeaderNormalized (meta-dstack 0.5.13+): the kernel ships with the canonical setup
	// header and the firmware normalizes it before measuring.
	KernelHeaderNormalized bool `json:"kernel_header_normalized,omitempty"`
	// SealedEnv (meta-dstack 0.5.13+) is kept as given: it does not enter any measurement.
	SealedEnv json.RawMessage `json:"sealed_env,omitempty"`
	Unknown   []string        `json:"unknown_fields,omitempty"`
}

// maxMetadataBytes bounds metadata.json: real ones are under 1 KiB.
const maxMetadataBytes = 1 << 20

type fieldKind int

const (
	kindString fieldKind = iota
	kindFile             // a string naming a file next to metadata.json
	kindBool
	kindRaw // any JSON value, kept verbatim
)

type metadataField struct {
	name     string
	kind     fieldKind
	required bool
	str      func(*Metadata) *string
	boolean  func(*Metadata) *bool
	rawValue func(*Metadata) *json.RawMessage
}

// metadataFields lists the known fields. Required are the ones a TDX measurement cannot
// do without: the firmware, the kernel and the command line (the initrd is optional,
// as QEMU boots without one).
var metadataFields = []metadataField{
	{name: "bios", kind: kindFile, required: true, str: func(m *Metadata) *string { return &m.Bios }},
	{name: "bios-sev", kind: kindFile, str: func(m *Metadata) *string { return &m.BiosSEV }},
	{name: "kernel", kind: kindFile, required: true, str: func(m *Metadata) *string { return &m.Kernel }},
	{name: "initrd", kind: kindFile, str: func(m *Metadata) *string { return &m.Initrd }},
	{name: "cmdline", kind: kindString, required: true, str: func(m *Metadata) *string { return &m.Cmdline }},
	{name: "rootfs", kind: kindFile, str: func(m *Metadata) *string { return &m.Rootfs }},
	{name: "hda", kind: kindFile, str: func(m *Metadata) *string { return &m.Hda }},
	{name: "rootfs_hash", kind: kindString, str: func(m *Metadata) *string { return &m.RootfsHash }},
	{name: "version", kind: kindString, str: func(m *Metadata) *string { return &m.Version }},
	{name: "git_revision", kind: kindString, str: func(m *Metadata) *string { return &m.GitRevision }},
	{name: "ovmf_variant", kind: kindString, str: func(m *Metadata) *string { return &m.OVMFVariant }},
	{name: "shared_ro", kind: kindBool, boolean: func(m *Metadata) *bool { return &m.SharedRO }},
	{name: "is_dev", kind: kindBool, boolean: func(m *Metadata) *bool { return &m.IsDev }},
	{name: "kernel_header_normalized", kind: kindBool, boolean: func(m *Metadata) *bool { return &m.KernelHeaderNormalized }},
	{name: "sealed_env", kind: kindRaw, rawValue: func(m *Metadata) *json.RawMessage { return &m.SealedEnv }},
}

// ParseMetadata decodes a metadata.json. Every file field must be a plain relative
// name (see CleanName); a duplicated key is an error, because JSON readers disagree
// on which copy wins and the VMM must boot what the auditor measured.
func ParseMetadata(data []byte) (Metadata, error) {
	var m Metadata
	if len(data) > maxMetadataBytes {
		return m, fmt.Errorf("%s: %d bytes, over the %d-byte limit", MetadataFileName, len(data), maxMetadataBytes)
	}
	raw, err := decodeObjectNoDuplicates(data)
	if err != nil {
		return m, fmt.Errorf("%s: %w", MetadataFileName, err)
	}
	var missing []string
	known := make(map[string]bool, len(metadataFields))
	for _, f := range metadataFields {
		known[f.name] = true
		v, ok := raw[f.name]
		if !ok || bytes.Equal(v, []byte("null")) {
			if f.required {
				missing = append(missing, f.name)
			}
			continue
		}
		switch f.kind {
		case kindRaw:
			*f.rawValue(&m) = append(json.RawMessage(nil), v...)
		case kindBool:
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return m, fmt.Errorf("%s: field %q: want true or false, got %s", MetadataFileName, f.name, short(v))
			}
			*f.boolean(&m) = b
		default:
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return m, fmt.Errorf("%s: field %q: want a string, got %s", MetadataFileName, f.name, short(v))
			}
			if f.kind == kindFile {
				clean, err := CleanName(s)
				if err != nil {
					return m, fmt.Errorf("%s: field %q: %w", MetadataFileName, f.name, err)
				}
				s = clean
			}
			*f.str(&m) = s
		}
	}
	if len(missing) > 0 {
		return m, fmt.Errorf("%s: missing required field(s): %s", MetadataFileName, strings.Join(missing, ", "))
	}
	for k := range raw {
		if !known[k] {
			m.Unknown = append(m.Unknown, k)
		}
	}
	sort.Strings(m.Unknown)
	return m, nil
}

// decodeObjectNoDuplicates decodes a JSON object one level deep, refusing duplicate
// keys and trailing data.
func decodeObjectNoDuplicates(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	out := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("not JSON: object key is not a string")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("field %q: %w", key, err)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("field %q appears more than once", key)
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the JSON object")
	}
	return out, nil
}

func short(v []byte) string {
	if len(v) > 40 {
		return string(v[:40]) + "..."
	}
	return string(v)
}

// fileFields returns the metadata fields naming files, with their roles, in a fixed
// order.
func (m *Metadata) fileFields() []namedFile {
	var out []namedFile
	add := func(field, name string, role Role) {
		if name != "" {
			out = append(out, namedFile{field: field, name: name, role: role})
		}
	}
	add("bios", m.Bios, RoleFirmware)
	add("kernel", m.Kernel, RoleKernel)
	add("initrd", m.Initrd, RoleInitrd)
	add("rootfs", m.Rootfs, RoleRootfs)
	add("hda", m.Hda, RoleRootfs)
	add("bios-sev", m.BiosSEV, RoleFirmwareSEV)
	return out
}

type namedFile struct {
	field, name string
	role        Role
}

// CleanName checks that name is a relative path that stays inside the image folder
// and returns it in canonical form ("./bzImage" becomes "bzImage"). Absolute paths,
// ".." components, empty names, backslashes and NUL bytes are refused.
func CleanName(name string) (string, error) {
	orig := name
	for strings.HasPrefix(name, "./") {
		name = strings.TrimLeft(name[2:], "/")
	}
	switch {
	case name == "" || name == ".":
		return "", fmt.Errorf("empty file name %q", orig)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("file name %q is an absolute path", orig)
	case strings.ContainsAny(name, "\\\x00"):
		return "", fmt.Errorf("file name %q contains a backslash or NUL", orig)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("file name %q leaves the image folder (..)", orig)
		}
	}
	if !fs.ValidPath(name) {
		return "", fmt.Errorf("file name %q is not a clean relative path", orig)
	}
	return name, nil
}
