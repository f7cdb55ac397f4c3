package verify

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/dstack-mr/dstack-mr/internal/scale"
)

// dstack's KMS and verifier take an attestation as {"attestation": "<hex>"}: a versioned
// attestation encoded either as MessagePack (dstack 0.6.0 release candidates) or as SCALE
// (later). Both carry the same pieces: the TDX quote, the event log (boot events with digests,
// runtime events), the report data and the vm_config JSON. decodeBinaryAttestation returns them
// in GetQuote form so the rest of Verify treats them alike.

// maxBinaryAttestation bounds the decoded attestation (a quote and a compact log: ~10 KiB).
const maxBinaryAttestation = 1 << 20

type binEvent struct {
	IMR          uint32 `json:"imr"`
	EventType    uint32 `json:"event_type"`
	Digest       string `json:"digest"`
	Event        string `json:"event"`
	EventPayload string `json:"event_payload"`
}

type binAttestation struct {
	quote, reportData []byte
	events            []binEvent
	config            string
	encoding          string
}

func decodeBinaryAttestation(hexText string) (*binAttestation, error) {
	if len(hexText) > 2*maxBinaryAttestation {
		return nil, fmt.Errorf("attestation: %d hex digits, over the %d-byte limit", len(hexText), maxBinaryAttestation)
	}
	raw, err := hex.DecodeString(hexText)
	if err != nil {
		return nil, fmt.Errorf("attestation: not hex: %w", err)
	}
	return decodeBinaryAttestationBytes(raw)
}

// decodeBinaryAttestationBytes decodes the encoded attestation itself, MessagePack or SCALE.
func decodeBinaryAttestationBytes(raw []byte) (*binAttestation, error) {
	if len(raw) == 0 {
		return nil, errors.New("attestation: empty")
	}
	if len(raw) > maxBinaryAttestation {
		return nil, fmt.Errorf("attestation: %d bytes, over the %d-byte limit", len(raw), maxBinaryAttestation)
	}
	// A MessagePack map starts with 0x80..0x8f or 0xde/0xdf; SCALE's first byte is the
	// attestation version variant, 0.
	if raw[0]&0xf0 == 0x80 || raw[0] == 0xde || raw[0] == 0xdf {
		a, err := decodeMsgpackAttestation(raw)
		if err != nil {
			return nil, fmt.Errorf("attestation (MessagePack): %w", err)
		}
		return a, nil
	}
	a, err := decodeSCALEAttestation(raw)
	if err != nil {
		return nil, fmt.Errorf("attestation (SCALE): %w", err)
	}
	return a, nil
}

// --- MessagePack -----------------------------------------------------------------------------

type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) take(n int) ([]byte, error) {
	if n < 0 || r.off+n > len(r.b) {
		return nil, fmt.Errorf("truncated at offset %d (needs %d bytes)", r.off, n)
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v, nil
}

func (r *mpReader) uint(n int) (uint64, error) {
	b, err := r.take(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// value decodes one MessagePack value into nil, bool, int64, uint64, string, []byte, []any or
// map[string]any. Depth and container sizes are bounded by the input length.
func (r *mpReader) value(depth int) (any, error) {
	if depth > 16 {
		return nil, errors.New("nested too deeply")
	}
	tb, err := r.take(1)
	if err != nil {
		return nil, err
	}
	t := tb[0]
	length := func(n int) (int, error) {
		v, err := r.uint(n)
		if err != nil {
			return 0, err
		}
		if v > uint64(len(r.b)) {
			return 0, fmt.Errorf("length %d beyond the input", v)
		}
		return int(v), nil
	}
	switch {
	case t <= 0x7f:
		return uint64(t), nil
	case t >= 0xe0:
		return int64(int8(t)), nil
	case t&0xe0 == 0xa0:
		b, err := r.take(int(t & 0x1f))
		return string(b), err
	case t&0xf0 == 0x90:
		return r.array(int(t&0x0f), depth)
	case t&0xf0 == 0x80:
		return r.mapOf(int(t&0x0f), depth)
	}
	switch t {
	case 0xc0:
		return nil, nil
	case 0xc2, 0xc3:
		return t == 0xc3, nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		return r.uint(1 << (t - 0xcc))
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (t - 0xd0)
		v, err := r.uint(n)
		shift := 64 - 8*n
		return int64(v<<shift) >> shift, err
	case 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6:
		width := map[byte]int{0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[t]
		n, err := length(width)
		if err != nil {
			return nil, err
		}
		b, err := r.take(n)
		if t >= 0xd9 {
			return string(b), err
		}
		return b, err
	case 0xdc, 0xdd:
		n, err := length(2 << (t - 0xdc))
		if err != nil {
			return nil, err
		}
		return r.array(n, depth)
	case 0xde, 0xdf:
		n, err := length(2 << (t - 0xde))
		if err != nil {
			return nil, err
		}
		return r.mapOf(n, depth)
	}
	return nil, fmt.Errorf("unsupported MessagePack type 0x%02x at offset %d", t, r.off-1)
}

func (r *mpReader) array(n, depth int) ([]any, error) {
	out := make([]any, 0, min(n, 1024))
	for i := 0; i < n; i++ {
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (r *mpReader) mapOf(n, depth int) (map[string]any, error) {
	out := map[string]any{}
	for i := 0; i < n; i++ {
		k, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("map key %v is not a string", k)
		}
		if out[ks], err = r.value(depth + 1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mpBytes accepts MessagePack bin, or an array of small integers (how serde writes Vec<u8>).
func mpBytes(v any, field string) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case []any:
		out := make([]byte, len(x))
		for i, e := range x {
			n, ok := e.(uint64)
			if !ok || n > math.MaxUint8 {
				return nil, fmt.Errorf("%s[%d] is not a byte", field, i)
			}
			out[i] = byte(n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not bytes", field)
}

func mpMap(v any, field string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not a map", field)
	}
	return m, nil
}

func mpUint32(v any, field string) (uint32, error) {
	n, ok := v.(uint64)
	if !ok || n > math.MaxUint32 {
		return 0, fmt.Errorf("%s is not a u32", field)
	}
	return uint32(n), nil
}

func decodeMsgpackAttestation(raw []byte) (*binAttestation, error) {
	r := &mpReader{b: raw}
	v, err := r.value(0)
	if err != nil {
		return nil, err
	}
	if r.off != len(raw) {
		return nil, fmt.Errorf("%d bytes after the attestation", len(raw)-r.off)
	}
	top, err := mpMap(v, "attestation")
	if err != nil {
		return nil, err
	}
	if ver, _ := top["version"].(uint64); ver != 1 {
		return nil, fmt.Errorf("version %v: only 1 is known", top["version"])
	}
	platform, err := mpMap(top["platform"], "platform")
	if err != nil {
		return nil, err
	}
	if platform["kind"] != "tdx" {
		return nil, fmt.Errorf("platform kind %v: only tdx is supported", platform["kind"])
	}
	pdata, err := mpMap(platform["data"], "platform.data")
	if err != nil {
		return nil, err
	}
	a := &binAttestation{encoding: "MessagePack"}
	if a.quote, err = mpBytes(pdata["quote"], "platform.data.quote"); err != nil {
		return nil, err
	}
	evs, ok := pdata["event_log"].([]any)
	if !ok {
		return nil, errors.New("platform.data.event_log is not a list")
	}
	for i, e := range evs {
		m, err := mpMap(e, fmt.Sprintf("event_log[%d]", i))
		if err != nil {
			return nil, err
		}
		var ev binEvent
		if ev.IMR, err = mpUint32(m["imr"], fmt.Sprintf("event_log[%d].imr", i)); err != nil {
			return nil, err
		}
		if ev.EventType, err = mpUint32(m["event_type"], fmt.Sprintf("event_log[%d].event_type", i)); err != nil {
			return nil, err
		}
		d, err := mpBytes(m["digest"], fmt.Sprintf("event_log[%d].digest", i))
		if err != nil {
			return nil, err
		}
		p, err := mpBytes(m["event_payload"], fmt.Sprintf("event_log[%d].event_payload", i))
		if err != nil {
			return nil, err
		}
		name, _ := m["event"].(string)
		ev.Digest, ev.Event, ev.EventPayload = hex.EncodeToString(d), name, hex.EncodeToString(p)
		a.events = append(a.events, ev)
	}
	stack, err := mpMap(top["stack"], "stack")
	if err != nil {
		return nil, err
	}
	if stack["kind"] != "dstack" {
		return nil, fmt.Errorf("stack kind %v: only dstack is supported", stack["kind"])
	}
	sdata, err := mpMap(stack["data"], "stack.data")
	if err != nil {
		return nil, err
	}
	if a.reportData, err = mpBytes(sdata["report_data"], "stack.data.report_data"); err != nil {
		return nil, err
	}
	if a.config, ok = sdata["config"].(string); !ok {
		return nil, errors.New("stack.data.config is not a string")
	}
	return a, nil
}

// --- SCALE -----------------------------------------------------------------------------------

func decodeSCALEAttestation(raw []byte) (*binAttestation, error) {
	r := scale.NewReader(raw, "")
	head, err := r.Take(2, "variant")
	if err != nil {
		return nil, err
	}
	if head[0] != 0 {
		return nil, fmt.Errorf("versioned attestation variant %d: only 0 is known", head[0])
	}
	if head[1] != 0 {
		return nil, fmt.Errorf("platform variant %d: only 0 (TDX) is supported", head[1])
	}
	a := &binAttestation{encoding: "SCALE"}
	if a.quote, err = r.Bytes("quote"); err != nil {
		return nil, err
	}
	n, err := r.Compact("event count")
	if err != nil {
		return nil, err
	}
	if n > uint64(len(raw)) {
		return nil, fmt.Errorf("event count %d beyond the input", n)
	}
	for i := uint64(0); i < n; i++ {
		var ev binEvent
		f := fmt.Sprintf("event %d", i)
		if ev.IMR, err = r.U32(f + " imr"); err != nil {
			return nil, err
		}
		if ev.EventType, err = r.U32(f + " event_type"); err != nil {
			return nil, err
		}
		d, err := r.Bytes(f + " digest")
		if err != nil {
			return nil, err
		}
		name, err := r.Bytes(f + " event")
		if err != nil {
			return nil, err
		}
		p, err := r.Bytes(f + " event_payload")
		if err != nil {
			return nil, err
		}
		ev.Digest, ev.Event, ev.EventPayload = hex.EncodeToString(d), string(name), hex.EncodeToString(p)
		a.events = append(a.events, ev)
	}
	// Runtime events repeat the RTMR3 entries of the log; they are read and set aside.
	rn, err := r.Compact("runtime event count")
	if err != nil {
		return nil, err
	}
	if rn > uint64(len(raw)) {
		return nil, fmt.Errorf("runtime event count %d beyond the input", rn)
	}
	for i := uint64(0); i < rn; i++ {
		if _, err := r.Bytes(fmt.Sprintf("runtime event %d name", i)); err != nil {
			return nil, err
		}
		if _, err := r.Bytes(fmt.Sprintf("runtime event %d payload", i)); err != nil {
			return nil, err
		}
	}
	if a.reportData, err = r.Take(64, "report_data"); err != nil {
		return nil, err
	}
	cfg, err := r.Bytes("config")
	if err != nil {
		return nil, err
	}
	a.config = string(cfg)
	if r.Offset() != len(raw) {
		return nil, fmt.Errorf("%d bytes after the attestation", len(raw)-r.Offset())
	}
	return a, nil
}

// getQuoteForm renders the pieces the way gather reads a GetQuote response.
func (a *binAttestation) eventLogJSON() ([]byte, error) {
	if a.events == nil {
		a.events = []binEvent{}
	}
	return json.Marshal(a.events)
}
