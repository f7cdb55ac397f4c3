// Package eventlog reads the TDX event log a dstack guest agent returns from GetQuote, replays
// it into RTMR values, checks dstack's RTMR3 runtime events against their payloads and pulls
// out the facts RTMR3 attests to (app id, compose hash, instance id, key provider, ...).
//
// The log is a JSON list of {imr, event_type, digest, event, event_payload} with hex byte
// strings (dstack's cc-eventlog TdxEvent). IMR indexes are zero based: imr 0 is RTMR0.
// This package must not import package mr (mr may import it).
package eventlog

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed wraps every structural error of an event log.
var ErrMalformed = errors.New("malformed event log")

// Limits bounding what Parse accepts. A real log has a few dozen events of a few KiB.
const (
	MaxLogBytes  = 64 << 20
	MaxEvents    = 1 << 16
	NumRTMRs     = 4
	DigestLen    = sha512.Size384
	RuntimeIMR   = 3
	maxEventName = 4096
)

// RuntimeEventType is dstack's event type for RTMR3 runtime events (not a TCG type).
const RuntimeEventType = 0x08000001

// Runtime event digest formats (dstack-types EventLogVersion).
const (
	VersionV1 = 1 // SHA384(type_le32 || ":" || name || ":" || payload)
	VersionV2 = 2 // SHA384(JCS canonical {"name":..,"payload":hex,"type":134217729})
)

// Hex is a byte string that marshals to lowercase hex in JSON.
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h Hex) String() string { return hex.EncodeToString(h) }

// Event is one entry of the log.
type Event struct {
	Index     int    `json:"index"` // position in the log
	IMR       uint32 `json:"imr"`
	EventType uint32 `json:"event_type"`
	// Digest is the logged SHA-384; empty when the producer stripped it (dstack strips the
	// digest of runtime events, which is recomputable from name and payload).
	Digest  Hex    `json:"digest"`
	Name    string `json:"event"`
	Payload Hex    `json:"event_payload"`
	// Version is the runtime event digest format (1 when the log does not say).
	Version int `json:"version,omitempty"`
	// Preimage is the optional logged digest pre-image of a runtime event.
	Preimage Hex `json:"preimage,omitempty"`
	// Label names what the event measures (see Label); empty until Label runs.
	Label string `json:"label,omitempty"`
}

// rawEvent mirrors the JSON so every field can be validated with its name.
type rawEvent struct {
	IMR       *int64  `json:"imr"`
	EventType *int64  `json:"event_type"`
	Digest    *string `json:"digest"`
	Event     string  `json:"event"`
	Payload   *string `json:"event_payload"`
	Version   *int64  `json:"version"`
	Preimage  *string `json:"preimage"`
}

// Parse decodes an event log: either the JSON list itself or a JSON string holding it (the
// way GetQuote's event_log field carries it).
func Parse(data []byte) ([]Event, error) {
	if len(data) > MaxLogBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrMalformed, len(data), MaxLogBytes)
	}
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var inner string
		if err := json.Unmarshal(data, &inner); err != nil {
			return nil, fmt.Errorf("%w: event log string: %v", ErrMalformed, err)
		}
		data = bytes.TrimSpace([]byte(inner))
	}
	var raws []rawEvent
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("%w: want a JSON list of events: %s", ErrMalformed, jsonProblem(err))
	}
	if len(raws) > MaxEvents {
		return nil, fmt.Errorf("%w: %d events, over the %d limit", ErrMalformed, len(raws), MaxEvents)
	}
	events := make([]Event, len(raws))
	for i := range raws {
		if err := convert(i, &raws[i], &events[i]); err != nil {
			return nil, err
		}
	}
	return events, nil
}

func convert(i int, r *rawEvent, e *Event) error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: event %d: %s: %s", ErrMalformed, i, field, fmt.Sprintf(format, args...))
	}
	e.Index = i
	if r.IMR == nil {
		return fail("imr", "missing")
	}
	if *r.IMR < 0 || *r.IMR >= NumRTMRs {
		return fail("imr", "%d out of range 0..3", *r.IMR)
	}
	e.IMR = uint32(*r.IMR)
	if r.EventType == nil {
		return fail("event_type", "missing")
	}
	if *r.EventType < 0 || *r.EventType > 0xffffffff {
		return fail("event_type", "%d is not a u32", *r.EventType)
	}
	e.EventType = uint32(*r.EventType)
	if len(r.Event) > maxEventName {
		return fail("event", "name is %d bytes long", len(r.Event))
	}
	e.Name = r.Event
	var err error
	if r.Digest != nil {
		if e.Digest, err = decodeHex(*r.Digest); err != nil {
			return fail("digest", "%v", err)
		}
		if len(e.Digest) != 0 && len(e.Digest) != DigestLen {
			return fail("digest", "%d bytes, want %d (SHA-384)", len(e.Digest), DigestLen)
		}
	}
	if r.Payload != nil {
		if e.Payload, err = decodeHex(*r.Payload); err != nil {
			return fail("event_payload", "%v", err)
		}
	}
	e.Version = VersionV1
	if r.Version != nil {
		if *r.Version != VersionV1 && *r.Version != VersionV2 {
			return fail("version", "unknown runtime event log version %d", *r.Version)
		}
		e.Version = int(*r.Version)
	}
	if r.Preimage != nil {
		if e.Preimage, err = decodeHex(*r.Preimage); err != nil {
			return fail("preimage", "%v", err)
		}
	}
	if !e.IsRuntime() && len(e.Digest) == 0 {
		return fail("digest", "missing: only runtime events (type 0x%08x) may omit it", RuntimeEventType)
	}
	return nil
}

func decodeHex(s string) ([]byte, error) {
	s = strings.TrimPrefix(s, "0x")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex: %v", err)
	}
	return b, nil
}

// IsRuntime reports whether e is a dstack runtime event, whose digest derives from its name
// and payload.
func (e *Event) IsRuntime() bool { return e.EventType == RuntimeEventType }

// DigestStripped reports whether e is a runtime event logged without its digest (some
// providers strip them). Its digest is recomputed from name and payload, as dstack computes it
// when extending RTMR3, so nothing is lost: the quote's RTMR3 still decides.
func (e *Event) DigestStripped() bool { return e.IsRuntime() && len(e.Digest) == 0 }

// RuntimeCounts counts the runtime events of a log and those of them logged without a digest.
func RuntimeCounts(events []Event) (runtime, stripped int) {
	for i := range events {
		if events[i].IsRuntime() {
			runtime++
			if events[i].DigestStripped() {
				stripped++
			}
		}
	}
	return runtime, stripped
}

// RuntimeDigest is what a dstack runtime event with this name and payload must extend.
func RuntimeDigest(version int, name string, payload []byte) []byte {
	sum := sha512.Sum384(RuntimePreimage(version, name, payload))
	return sum[:]
}

// RuntimePreimage is the byte string whose SHA-384 is a runtime event's digest.
func RuntimePreimage(version int, name string, payload []byte) []byte {
	if version == VersionV2 {
		return []byte(canonicalEventJSON(name, payload))
	}
	b := make([]byte, 0, 4+1+len(name)+1+len(payload))
	b = binary.LittleEndian.AppendUint32(b, RuntimeEventType)
	b = append(b, ':')
	b = append(b, name...)
	b = append(b, ':')
	return append(b, payload...)
}

// canonicalEventJSON is the RFC 8785 (JCS) form of {"name","payload","type"}: keys sorted,
// no whitespace, strings escaped the ECMAScript way.
func canonicalEventJSON(name string, payload []byte) string {
	var b strings.Builder
	b.WriteString(`{"name":`)
	writeJCSString(&b, name)
	b.WriteString(`,"payload":"`)
	b.WriteString(hex.EncodeToString(payload))
	fmt.Fprintf(&b, `","type":%d}`, RuntimeEventType)
	return b.String()
}

func writeJCSString(b *strings.Builder, s string) {
	const hexdigits = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hexdigits[r>>4])
				b.WriteByte(hexdigits[r&0xf])
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// ExtendDigest is the value of the register after extending digest: the register is
// replaced by SHA-384(register || digest).
func ExtendDigest(mr []byte, digest []byte) []byte {
	h := sha512.New384()
	h.Write(mr)
	h.Write(digest)
	return h.Sum(nil)
}

// EffectiveDigest is the digest the event extended into its register: for a runtime event
// the one recomputed from name and payload (so a tampered payload shows up in the replay),
// otherwise the logged one.
func (e *Event) EffectiveDigest() []byte {
	if e.IsRuntime() {
		return RuntimeDigest(e.Version, e.Name, e.Payload)
	}
	return e.Digest
}

// Replay extends each event's effective digest into its register, starting from 48 zero
// bytes, and returns RTMR0..3.
func Replay(events []Event) [NumRTMRs][]byte {
	var mrs [NumRTMRs][]byte
	for i := range mrs {
		mrs[i] = make([]byte, DigestLen)
	}
	for i := range events {
		e := &events[i]
		mrs[e.IMR] = ExtendDigest(mrs[e.IMR], e.EffectiveDigest())
	}
	return mrs
}

// ReplayDigests folds a list of digests into a register value from zero.
func ReplayDigests(digests [][]byte) []byte {
	mr := make([]byte, DigestLen)
	for _, d := range digests {
		mr = ExtendDigest(mr, d)
	}
	return mr
}

// DigestProblem is a runtime event whose logged digest or pre-image disagrees with the one
// recomputed from its name and payload.
type DigestProblem struct {
	Index    int    `json:"index"`
	IMR      uint32 `json:"imr"`
	Name     string `json:"event"`
	Logged   Hex    `json:"logged_digest,omitempty"`
	Computed Hex    `json:"computed_digest"`
	Reason   string `json:"reason"`
}

// CheckRuntimeDigests recomputes every runtime event's digest and reports each logged digest
// or pre-image that disagrees. A stripped (empty) digest is not a problem: the replay uses the
// recomputed one and the quote's RTMR decides.
func CheckRuntimeDigests(events []Event) []DigestProblem {
	var out []DigestProblem
	for i := range events {
		e := &events[i]
		if !e.IsRuntime() {
			continue
		}
		want := e.EffectiveDigest()
		p := DigestProblem{Index: e.Index, IMR: e.IMR, Name: e.Name, Logged: e.Digest, Computed: want}
		switch {
		case len(e.Digest) != 0 && !bytes.Equal(e.Digest, want):
			p.Reason = "logged digest differs from the SHA-384 of the event's name and payload"
		case e.Preimage != nil && !bytes.Equal(e.Preimage, RuntimePreimage(e.Version, e.Name, e.Payload)):
			p.Reason = "logged pre-image is not the canonical encoding of the event's name and payload"
		case e.Version == VersionV2 && e.Preimage == nil:
			p.Reason = "version 2 runtime event without its digest pre-image"
		case e.IMR != RuntimeIMR:
			p.Reason = fmt.Sprintf("runtime event extends RTMR%d, dstack extends runtime events into RTMR3 only", e.IMR)
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// jsonProblem words a JSON decoding error in the log's terms, without Go type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ) && typ.Field == "":
		return "got a JSON " + typ.Value
	case errors.As(err, &typ):
		want := "a number"
		if typ.Type.Kind().String() == "string" {
			want = "a string"
		}
		return fmt.Sprintf("an event's %s is a JSON %s, want %s", typ.Field, typ.Value, want)
	}
	return err.Error()
}
