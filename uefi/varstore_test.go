package uefi

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"
)

// An independent writer for authenticated variable stores: header structs
// are serialised by encoding/binary, which packs fields without padding,
// as VariableFormat.h's #pragma pack(1) does.

type testStoreHeader struct {
	Signature [16]byte
	Size      uint32
	Format    uint8
	State     uint8
	Reserved  uint16
	Reserved1 uint32
}

type testAuthVarHeader struct {
	StartID        uint16
	State          uint8
	Reserved       uint8
	Attributes     uint32
	MonotonicCount uint64
	TimeStamp      [16]byte
	PubKeyIndex    uint32
	NameSize       uint32
	DataSize       uint32
	VendorGUID     [16]byte
}

type testPlainVarHeader struct {
	StartID    uint16
	State      uint8
	Reserved   uint8
	Attributes uint32
	NameSize   uint32
	DataSize   uint32
	VendorGUID [16]byte
}

type testVar struct {
	guid  GUID
	name  string
	attr  uint32
	state uint8
	data  []byte
	count uint64
}

func ucs2z(s string) []byte {
	var b bytes.Buffer
	for _, c := range utf16.Encode([]rune(s)) {
		binary.Write(&b, binary.LittleEndian, c)
	}
	b.Write([]byte{0, 0})
	return b.Bytes()
}

// writeStore builds a CFV: NVRAM FV header, then the variable store.
func writeStore(auth bool, storeSize int, vars []testVar) []byte {
	var s bytes.Buffer
	sig := VariableStoreGUID
	if auth {
		sig = AuthenticatedVariableStoreGUID
	}
	binary.Write(&s, binary.LittleEndian, testStoreHeader{Signature: sig, Size: uint32(storeSize), Format: 0x5A, State: 0xFE})
	for _, v := range vars {
		for s.Len()%4 != 0 {
			s.WriteByte(0xFF)
		}
		name := ucs2z(v.name)
		if auth {
			binary.Write(&s, binary.LittleEndian, testAuthVarHeader{
				StartID: 0x55AA, State: v.state, Attributes: v.attr, MonotonicCount: v.count,
				TimeStamp: [16]byte{0xE9, 0x07, 11, 28}, PubKeyIndex: 0,
				NameSize: uint32(len(name)), DataSize: uint32(len(v.data)), VendorGUID: v.guid,
			})
		} else {
			binary.Write(&s, binary.LittleEndian, testPlainVarHeader{
				StartID: 0x55AA, State: v.state, Attributes: v.attr,
				NameSize: uint32(len(name)), DataSize: uint32(len(v.data)), VendorGUID: v.guid,
			})
		}
		s.Write(name)
		s.Write(v.data)
	}
	for s.Len() < storeSize {
		s.WriteByte(0xFF)
	}
	fv := fvSpec{fileSystem: NVRAMGUID, erase1: true, blockSize: 0x1000}.bytes()[:0x48]
	body := append(fv, s.Bytes()...)
	for len(body)%0x1000 != 0 {
		body = append(body, 0xFF)
	}
	// Re-stamp FvLength/block map/checksum for the final size.
	binary.LittleEndian.PutUint64(body[32:], uint64(len(body)))
	binary.LittleEndian.PutUint32(body[56:], uint32(len(body)/0x1000))
	binary.LittleEndian.PutUint16(body[50:], 0)
	var sum uint16
	for i := 0; i < 0x48; i += 2 {
		sum += binary.LittleEndian.Uint16(body[i:])
	}
	binary.LittleEndian.PutUint16(body[50:], -sum)
	return body
}

// certList returns an EFI_SIGNATURE_LIST-shaped blob holding one fake
// X.509 certificate (the parser must treat data as opaque bytes).
func certList(owner GUID, certLen int) []byte {
	cert := make([]byte, certLen)
	rand.Read(cert)
	cert[0], cert[1] = 0x30, 0x82 // DER SEQUENCE
	x509 := MustParseGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	var b bytes.Buffer
	b.Write(x509[:])
	binary.Write(&b, binary.LittleEndian, uint32(28+16+certLen)) // SignatureListSize
	binary.Write(&b, binary.LittleEndian, uint32(0))             // SignatureHeaderSize
	binary.Write(&b, binary.LittleEndian, uint32(16+certLen))    // SignatureSize
	b.Write(owner[:])
	b.Write(cert)
	return b.Bytes()
}

const authAttrs = 0x27 // NV|BS|RT|TIME_BASED_AUTHENTICATED_WRITE_ACCESS

func TestReadVariablesSynthetic(t *testing.T) {
	owner := MustParseGUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")
	pk := certList(owner, 777)
	oldPK := certList(owner, 500)
	kek := append(certList(owner, 1200), certList(owner, 900)...)
	db := certList(owner, 1500)
	dbx := make([]byte, 28+16+32)
	vars := []testVar{
		{GlobalVariableGUID, "PK", authAttrs, 0x3C, oldPK, 1},        // deleted
		{GlobalVariableGUID, "PK", authAttrs, VarAdded, pk, 2},       // live
		{GlobalVariableGUID, "KEK", authAttrs, 0x3E, kek[:100], 3},   // in deletion, superseded below
		{GlobalVariableGUID, "KEK", authAttrs, VarAdded, kek, 4},     // live
		{ImageSecurityDatabase, "db", authAttrs, VarAdded, db, 5},    // live
		{ImageSecurityDatabase, "dbx", authAttrs, 0x3E, dbx, 6},      // in deletion, no newer copy: live
		{GlobalVariableGUID, "Timeout", 0x07, 0x7F, []byte{5, 0}, 0}, // header only: not live
		{GlobalVariableGUID, "Lang", 0x07, VarAdded, []byte("eng\x00"), 0},
		{GlobalVariableGUID, "PlatformLangCodes", 0x06, VarAdded, []byte("en\x00"), 0},
	}
	wants := []struct {
		guid GUID
		name string
		data []byte
	}{
		{GlobalVariableGUID, "PK", pk},
		{GlobalVariableGUID, "KEK", kek},
		{ImageSecurityDatabase, "db", db},
		{GlobalVariableGUID, "Lang", []byte("eng\x00")},
		{GlobalVariableGUID, "PlatformLangCodes", []byte("en\x00")},
		{ImageSecurityDatabase, "dbx", dbx},
	}
	for _, auth := range []bool{true, false} {
		cfv := writeStore(auth, 0x4000, vars)
		got, err := ReadVariables(cfv)
		if err != nil {
			t.Fatalf("auth=%v: %v", auth, err)
		}
		if len(got) != len(wants) {
			t.Fatalf("auth=%v: %d variables, want %d: %+v", auth, len(got), len(wants), got)
		}
		for i, w := range wants {
			g := got[i]
			if g.VendorGUID != w.guid || g.Name != w.name || !bytes.Equal(g.Data, w.data) {
				t.Errorf("auth=%v variable %d: %s/%s (%d bytes), want %s/%s (%d bytes)",
					auth, i, g.VendorGUID, g.Name, len(g.Data), w.guid, w.name, len(w.data))
			}
		}
		if v := FindVariable(got, GlobalVariableGUID, "PK"); v == nil || v.Attributes != authAttrs ||
			(auth && v.MonotonicCount != 2) || (!auth && v.MonotonicCount != 0) {
			t.Errorf("auth=%v: PK = %+v", auth, v)
		}
		if FindVariable(got, GlobalVariableGUID, "Timeout") != nil || FindVariable(got, GlobalVariableGUID, "SecureBoot") != nil {
			t.Errorf("auth=%v: found a variable that is not live", auth)
		}
		// The bare store (without the FV header) reads the same.
		bare, err := ReadVariables(cfv[0x48:])
		if err != nil || len(bare) != len(got) {
			t.Errorf("auth=%v: bare store: %d variables, %v", auth, len(bare), err)
		}
	}
}

func TestReadVariablesDebianEmpty(t *testing.T) {
	for _, ri := range realImages {
		t.Run(ri.name, func(t *testing.T) {
			cfv, err := VariableStoreVolume(loadImage(t, ri.path))
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(cfv)) != ri.nvSize {
				t.Fatalf("CFV is %#x bytes, want %#x", len(cfv), ri.nvSize)
			}
			vars, err := ReadVariables(cfv)
			if err != nil {
				t.Fatal(err)
			}
			for _, sb := range []struct {
				g GUID
				n string
			}{{GlobalVariableGUID, "SecureBoot"}, {GlobalVariableGUID, "PK"}, {GlobalVariableGUID, "KEK"},
				{ImageSecurityDatabase, "db"}, {ImageSecurityDatabase, "dbx"}} {
				if FindVariable(vars, sb.g, sb.n) != nil {
					t.Errorf("%s present in the shipped varstore", sb.n)
				}
			}
			if len(vars) != ri.wantVariables {
				t.Errorf("%d variables, want %d", len(vars), ri.wantVariables)
			}
		})
	}
}

func TestReadVariablesErrors(t *testing.T) {
	good := writeStore(true, 0x1000, []testVar{{GlobalVariableGUID, "PK", authAttrs, VarAdded, []byte("x"), 1}})
	corrupt := func(off int, b ...byte) []byte {
		c := append([]byte(nil), good...)
		copy(c[off:], b)
		return c
	}
	const store = 0x48
	const v0 = store + 28
	tests := []struct {
		name string
		cfv  []byte
		want string
	}{
		{"short", good[:10], "truncated"},
		{"wrong FV file system", corrupt(16, 0), "CFV file system"},
		{"FvLength too big", corrupt(32, 0xff, 0xff, 0xff), "FvLength"},
		{"unknown signature", corrupt(store, 0), "signature"},
		{"store size too big", corrupt(store+16, 0xff, 0xff, 0xff, 0x7f), "Size"},
		{"not healthy", corrupt(store+21, 0xfc), "Format"},
		{"name size overflow", corrupt(v0+36, 0xfe, 0xff, 0xff, 0xff), "NameSize"},
		{"data size overflow", corrupt(v0+40, 0, 0x10, 0, 0), "DataSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadVariables(tc.cfv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// An erased store has no variables and is no error.
	erased := append(append([]byte(nil), good[:store]...), bytes.Repeat([]byte{0xFF}, len(good)-store)...)
	if vars, err := ReadVariables(erased); err != nil || len(vars) != 0 {
		t.Fatalf("erased store: %v, %v", vars, err)
	}
}

func TestUTF16LE(t *testing.T) {
	if got := UTF16LE("db"); !bytes.Equal(got, []byte{'d', 0, 'b', 0}) {
		t.Fatalf("UTF16LE(db) = %x", got)
	}
}

// restamp recomputes a CFV's FV header checksum after a test edits the header.
func restamp(cfv []byte) []byte {
	hl := int(binary.LittleEndian.Uint16(cfv[48:]))
	binary.LittleEndian.PutUint16(cfv[50:], 0)
	binary.LittleEndian.PutUint16(cfv[50:], -checksum16(cfv[:hl]))
	return cfv
}

func TestValidateCFVForEmulatedStore(t *testing.T) {
	// Real stores OVMF accepts: the blank one of the 2025 image, the enrolled-keys one of
	// Debian's TDX Secure Boot image and Debian's ms varstore template.
	blank := loadImage(t, realImages[0].path)[:0x84000]
	keys := loadImage(t, "../testdata/vectors/ovmf-inteltdx.ms-debian-2026.08+ds-2.fd.gz")[:0x84000]
	template := loadImage(t, "../testdata/vectors/ovmf-vars-4m.ms-debian-2022.11-6+deb12u2.fd.gz")
	for name, cfv := range map[string][]byte{"blank": blank, "enrolled keys": keys, "ms template": template} {
		if err := ValidateCFVForEmulatedStore(cfv); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	hl := int(binary.LittleEndian.Uint16(keys[48:]))
	v0 := hl + 28 // first variable header
	first := v0 + 60 + int(binary.LittleEndian.Uint32(keys[v0+36:])) + int(binary.LittleEndian.Uint32(keys[v0+40:]))
	if first%4 == 0 {
		t.Fatalf("first variable ends aligned at %#x: the padding case needs another variable", first)
	}
	storeSize := int(binary.LittleEndian.Uint32(keys[hl+16:]))
	edit := func(f func(c []byte) []byte) []byte { return f(bytes.Clone(keys)) }
	for _, tc := range []struct {
		name string
		cfv  []byte
		want string
	}{
		{"short", keys[:40], "shorter"},
		{"attributes", edit(func(c []byte) []byte { c[44] = 0xFE; return restamp(c) }), "Attributes"},
		{"checksum", edit(func(c []byte) []byte { c[50]++; return c }), "checksum"},
		{"odd header length", edit(func(c []byte) []byte { c[48]++; return restamp(c) }), "HeaderLength"},
		{"FvLength not the section size", keys[:len(keys)-0x1000], "FvLength"},
		{"zero vector", edit(func(c []byte) []byte { c[3] = 1; return c }), "ZeroVector"},
		{"plain store", edit(func(c []byte) []byte { copy(c[hl:], VariableStoreGUID[:]); return c }), "authenticated"},
		{"unhealthy store", edit(func(c []byte) []byte { c[hl+21] = 0xFC; return c }), "State"},
		{"store size", edit(func(c []byte) []byte { binary.LittleEndian.PutUint32(c[hl+16:], 0x7FFFFFFF); return c }), "Size"},
		{"variable state", edit(func(c []byte) []byte { c[v0+2] = 0x11; return c }), "State 0x11"},
		{"data past the store", edit(func(c []byte) []byte { binary.LittleEndian.PutUint32(c[v0+40:], 0x7FFFFFF0); return c }), "runs past"},
		{"padding", edit(func(c []byte) []byte { c[first] = 0; return c }), "padding"},
		{"garbage in erased space", edit(func(c []byte) []byte { c[hl+storeSize-1] = 0; return c }), "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateCFVForEmulatedStore(tc.cfv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
