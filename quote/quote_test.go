package quote

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// genuineQuotes loads the real quotes published by upstream dstack and read from
// the shared reference data (captured from real TDX CVMs by
// upstream dstack): two hex quotes inside GetQuote responses and one binary quote.
func genuineQuotes(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range []string{"quote-report.json", "tdx-lite-getquote.json"} {
		data, err := os.ReadFile(testvectors.Shared(t, testvectors.DstackVerifier(name)))
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Quote string `json:"quote"`
		}
		if err := json.Unmarshal(data, &resp); err != nil {
			t.Fatal(err)
		}
		out[name] = []byte(resp.Quote)
	}
	bin, err := os.ReadFile(testvectors.Shared(t, testvectors.DstackVerifier("ra-tls-tdx_quote.bin")))
	if err != nil {
		t.Fatal(err)
	}
	out["ra-tls-tdx_quote.bin"] = bin
	return out
}

func TestParseGenuine(t *testing.T) {
	for name, data := range genuineQuotes(t) {
		t.Run(name, func(t *testing.T) {
			q, err := ParseAuto(data)
			if err != nil {
				t.Fatal(err)
			}
			if q.Header.Version != 4 || q.Header.TEEType != TEETypeTDX || q.BodyType != BodyTypeTDReport10 {
				t.Errorf("header %+v body type %d", q.Header, q.BodyType)
			}
			// Intel's QE vendor ID, a constant nobody here chose.
			if got := q.Header.QEVendorID.String(); got != "939a7233f79c4ca9940a0db3957f0607" {
				t.Errorf("QE vendor ID %s", got)
			}
			if q.SignatureVerified {
				t.Error("SignatureVerified must be false")
			}
			raw := DecodeHexOrBinary(data)
			if want := len(raw) - HeaderLen - TDReport10Len - 4 - q.PaddingLen; q.SignatureDataLen != want || q.SignatureDataLen < 1000 {
				t.Errorf("signature data %d bytes, want %d", q.SignatureDataLen, want)
			}
			// Every field is a view at its spec offset into the raw quote.
			body := raw[HeaderLen:]
			checks := []struct {
				name string
				got  []byte
				off  int
			}{
				{"mr_td", q.Report.MRTD, 136},
				{"rtmr0", q.Report.RTMR[0], 328},
				{"rtmr3", q.Report.RTMR[3], 472},
				{"report_data", q.Report.ReportData, 520},
			}
			for _, c := range checks {
				if !bytes.Equal(c.got, body[c.off:c.off+len(c.got)]) {
					t.Errorf("%s not at body offset %d", c.name, c.off)
				}
			}
			js, err := json.Marshal(q)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(js), `"signature_verified":false`) {
				t.Errorf("JSON must say the signature was not verified: %s", js[:200])
			}
		})
	}
}

func TestReportDataMatchesGetQuote(t *testing.T) {
	data, err := os.ReadFile(testvectors.Shared(t, testvectors.DstackVerifier("quote-report.json")))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct{ Quote, ReportData string }
	if err := json.Unmarshal(data, &resp); err != nil {
		t.Fatal(err)
	}
	var raw map[string]string
	_ = json.Unmarshal(data, &raw)
	q, err := ParseAuto([]byte(resp.Quote))
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Report.ReportData.String(); got != raw["report_data"] {
		t.Errorf("report_data %s, GetQuote said %s", got, raw["report_data"])
	}
}

// toV5 re-frames a genuine v4 quote as v5 (TD report 1.0 or, with extra fields appended, 1.5).
func toV5(v4 []byte, bodyType uint16) []byte {
	var out bytes.Buffer
	hdr := append([]byte(nil), v4[:HeaderLen]...)
	binary.LittleEndian.PutUint16(hdr, 5)
	out.Write(hdr)
	body := v4[HeaderLen : HeaderLen+TDReport10Len]
	if bodyType == BodyTypeTDReport15 {
		body = append(append([]byte(nil), body...), bytes.Repeat([]byte{0xa5}, TDReport15Len-TDReport10Len)...)
	}
	binary.Write(&out, binary.LittleEndian, bodyType)
	binary.Write(&out, binary.LittleEndian, uint32(len(body)))
	out.Write(body)
	out.Write(v4[HeaderLen+TDReport10Len:])
	return out.Bytes()
}

func TestParseV5(t *testing.T) {
	v4 := DecodeHexOrBinary(genuineQuotes(t)["quote-report.json"])
	q4, err := Parse(v4)
	if err != nil {
		t.Fatal(err)
	}
	for _, bt := range []uint16{BodyTypeTDReport10, BodyTypeTDReport15} {
		q, err := Parse(toV5(v4, bt))
		if err != nil {
			t.Fatalf("body type %d: %v", bt, err)
		}
		if q.Header.Version != 5 || q.BodyType != bt {
			t.Errorf("version %d body type %d", q.Header.Version, q.BodyType)
		}
		if !bytes.Equal(q.Report.MRTD, q4.Report.MRTD) || !bytes.Equal(q.Report.RTMR[3], q4.Report.RTMR[3]) {
			t.Error("v5 report fields differ from the v4 ones")
		}
		if bt == BodyTypeTDReport15 && (len(q.Report.MRServiceTD) != 48 || q.Report.MRServiceTD[0] != 0xa5) {
			t.Error("MRSERVICETD not read")
		}
		if bt == BodyTypeTDReport10 && q.Report.MRServiceTD != nil {
			t.Error("TD report 1.0 has no MRSERVICETD")
		}
	}
}

func TestParseErrors(t *testing.T) {
	v4 := DecodeHexOrBinary(genuineQuotes(t)["quote-report.json"])
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), v4...)) }
	cases := []struct {
		name  string
		data  []byte
		field string
	}{
		{"empty", nil, "header version"},
		{"short header", v4[:30], "header user data"},
		{"no body", v4[:HeaderLen+100], "TD report"},
		{"no sig len", v4[:HeaderLen+TDReport10Len+2], "signature data length"},
		{"sig len too big", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[HeaderLen+TDReport10Len:], 1<<30); return b }), "signature data length"},
		{"trailing byte", append(append([]byte(nil), v4...), 1), "not zero padding"},
		{"version 3", mut(func(b []byte) []byte { b[0] = 3; return b }), "version 3"},
		{"SGX TEE", mut(func(b []byte) []byte { b[4] = 0; return b }), "TEE type"},
		{"bad key type", mut(func(b []byte) []byte { b[2] = 9; return b }), "attestation key type"},
		{"v5 bad body size", func() []byte {
			b := toV5(v4, BodyTypeTDReport10)
			binary.LittleEndian.PutUint32(b[HeaderLen+2:], 648)
			return b
		}(), "body size"},
		{"v5 SGX body", func() []byte {
			b := toV5(v4, BodyTypeTDReport10)
			binary.LittleEndian.PutUint16(b[HeaderLen:], 1)
			return b
		}(), "SGX enclave"},
		{"v5 unknown body", func() []byte {
			b := toV5(v4, BodyTypeTDReport10)
			binary.LittleEndian.PutUint16(b[HeaderLen:], 7)
			return b
		}(), "body type 7"},
		{"cert data size", mut(func(b []byte) []byte {
			off := HeaderLen + TDReport10Len + 4 + 128 + 2
			binary.LittleEndian.PutUint32(b[off:], 5)
			return b
		}), "certification data size"},
		{"sig data cut", mut(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[HeaderLen+TDReport10Len:], 100)
			return b[:HeaderLen+TDReport10Len+4+100]
		}), "attestation key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.data)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q should wrap ErrMalformed and name %q", err, c.field)
			}
		})
	}
}

func TestCompactSeedsParse(t *testing.T) {
	for name, q := range genuineQuotes(t) {
		if _, err := Parse(compact(DecodeHexOrBinary(q))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseAutoHexForms(t *testing.T) {
	v4 := DecodeHexOrBinary(genuineQuotes(t)["quote-report.json"])
	h := hex.EncodeToString(v4)
	for _, in := range []string{h, "0x" + h, "  " + strings.ToUpper(h) + "\n", `"` + h + `"`} {
		if _, err := ParseAuto([]byte(in)); err != nil {
			t.Errorf("%.20q: %v", in, err)
		}
	}
	if _, err := ParseAuto([]byte(h + "zz")); err == nil {
		t.Error("accepted non-hex text")
	}
}

// compact keeps a genuine quote's header and body but empties its certification data, so
// the fuzzer's minimizer does not spend its time on kilobytes of PCK certificates.
func compact(raw []byte) []byte {
	const keep = HeaderLen + TDReport10Len + 4 + 128 + 2
	out := append([]byte(nil), raw[:keep]...)
	binary.LittleEndian.PutUint32(out[HeaderLen+TDReport10Len:], 128+2+4)
	return binary.LittleEndian.AppendUint32(out, 0)
}

func FuzzParse(f *testing.F) {
	for _, q := range genuineQuotes(f) {
		raw := compact(DecodeHexOrBinary(q))
		f.Add(raw)
		f.Add(toV5(raw, BodyTypeTDReport15))
		f.Add([]byte(hex.EncodeToString(raw)))
	}
	f.Add([]byte("0400"))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseAuto(data)
		if err != nil {
			return
		}
		if q.SignatureVerified || len(q.Report.MRTD) != 48 || len(q.Report.RTMR[3]) != 48 {
			t.Fatalf("inconsistent parse %+v", q.Header)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	raw := DecodeHexOrBinary(genuineQuotes(b)["quote-report.json"])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}
