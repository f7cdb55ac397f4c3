package snp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/uuid"
)

func failedChecks(v *AttestationVerification) []string {
	out := failed(v.Report)
	for _, c := range v.Checks {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

// The real capture verifies in both forms it travels in: the SCALE bytes (no cert chain: the
// VCEK and ASK given) with the legacy inline launch inputs, and the verifier's JSON with its
// embedded chain and the split document, whose os_image_hash is the SHA-256 of its
// sha256sum.txt. App facts come from the HOST_DATA-bound mr_config.
func TestVerifyRealAttestation(t *testing.T) {
	_, vcek, ask := realReportInputs(t)
	bin, err := ReadAttestation(readShared(t, "sev-snp/sev_snp_attestation.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bin.CertChain) != 0 || len(bin.RuntimeEvents) != 9 {
		t.Errorf("%d certs, %d runtime events", len(bin.CertChain), len(bin.RuntimeEvents))
	}
	if _, err := VerifyAttestation(bin, AttestationOptions{ReportOptions: ReportOptions{Now: captureTime}}); err == nil || !strings.Contains(err.Error(), "no VCEK/ASK") {
		t.Errorf("without certificates: %v", err)
	}
	v, err := VerifyAttestation(bin, AttestationOptions{ReportOptions: ReportOptions{VCEK: vcek, ASK: ask, Now: captureTime}})
	if err != nil {
		t.Fatal(err)
	}
	// Its launch inputs are the host's (legacy inline form): every check holds, but nothing the
	// relying party gave anchors the image, so it is not verified (the one identity rule).
	if v.Verified || len(failedChecks(v)) != 0 || !notChecked(v, "os-image-identity") || v.OSImageHashSource != "vm_config" || v.App == nil || v.App.AppID != "86e59625be93207bc2351c4d1bba20037cec8e16" {
		t.Errorf("SCALE: verified %v (failed %v), os_image_hash from %s, app %+v", v.Verified, failedChecks(v), v.OSImageHashSource, v.App)
	}
	// With the relying party's own launch document it verifies.
	doc, err := Decode(readShared(t, "sev-snp/extracted/measurement.snp.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := VerifyAttestation(bin, AttestationOptions{ReportOptions: ReportOptions{VCEK: vcek, ASK: ask, Now: captureTime}, Image: doc}); err != nil || !v.Verified {
		t.Errorf("SCALE with the relying party's document: %v, failed %v, not checked %v", err, failedChecks(v), v.NotChecked)
	}

	js, err := ReadAttestation(readShared(t, "sev-snp/sev-snp-attestation.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js.Report, bin.Report) {
		t.Error("the two forms carry different reports")
	}
	sums := sha256.Sum256(readShared(t, "sev-snp/extracted/sha256sum.snp-only.txt"))
	imageHash := hex.EncodeToString(sums[:])
	v, err = VerifyAttestation(js, AttestationOptions{ReportOptions: ReportOptions{Now: captureTime}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Verified || len(failedChecks(v)) != 0 || !notChecked(v, "os-image-identity") || v.OSImageHashSource != "measurement-document" || v.OSImageHash != imageHash {
		t.Errorf("JSON, nothing pinned: verified %v (failed %v), os_image_hash %s from %s", v.Verified, failedChecks(v), v.OSImageHash, v.OSImageHashSource)
	}
	v, err = VerifyAttestation(js, AttestationOptions{ReportOptions: ReportOptions{Now: captureTime}, ExpectedOSImageHash: imageHash})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verified || v.OSImageHashSource != "pinned-document" || v.OSImageHash != imageHash {
		t.Errorf("JSON, pinned: verified %v (failed %v), os_image_hash %s from %s", v.Verified, failedChecks(v), v.OSImageHash, v.OSImageHashSource)
	}
	// A legacy os_image_hash is never accepted as the expected image; the bound one is.
	for _, c := range []struct {
		a    *Attestation
		opts AttestationOptions
		want bool
	}{
		{bin, AttestationOptions{ReportOptions: ReportOptions{VCEK: vcek, ASK: ask, Now: captureTime}, ExpectedOSImageHash: "32b4767373ad7fa0f9c418925006194d5c3f5619529f309fe81156789fecd8bc"}, false},
		{js, AttestationOptions{ReportOptions: ReportOptions{Now: captureTime}, ExpectedOSImageHash: imageHash}, true},
		{js, AttestationOptions{ReportOptions: ReportOptions{Now: captureTime}, ExpectedOSImageHash: strings.Repeat("00", 32)}, false},
	} {
		v, err := VerifyAttestation(c.a, c.opts)
		if err != nil || v.Verified != c.want {
			t.Errorf("expected os_image_hash %s: verified %v, want %v (%v)", c.opts.ExpectedOSImageHash, v.Verified, c.want, err)
		}
	}
}

// A changed mr_config, report_data or vCPU count fails by name.
func TestVerifyAttestationRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(a *Attestation)
		want string
	}{
		{"mr_config", func(a *Attestation) { a.MRConfig = strings.Replace(a.MRConfig, "86e5", "86e6", 1) }, "host-data"},
		{"report_data", func(a *Attestation) { a.ReportData = make([]byte, 64) }, "report-data"},
		{"vcpus", func(a *Attestation) { a.Config = strings.Replace(a.Config, `\"vcpus\":2`, `\"vcpus\":4`, 1) }, "measurement"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := ReadAttestation(readShared(t, "sev-snp/sev-snp-attestation.json"))
			if err != nil {
				t.Fatal(err)
			}
			c.edit(a)
			v, err := VerifyAttestation(a, AttestationOptions{ReportOptions: ReportOptions{Now: captureTime}})
			if err != nil {
				t.Fatal(err)
			}
			if v.Verified || !strings.Contains(strings.Join(failedChecks(v), ","), c.want) {
				t.Errorf("verified %v, failed %v; want %s", v.Verified, failedChecks(v), c.want)
			}
		})
	}
}

func FuzzReadAttestation(f *testing.F) {
	if dir, ok := sharedDir(); ok {
		for _, p := range []string{"sev-snp/sev_snp_attestation.bin", "sev-snp/sev-snp-attestation.json"} {
			if b, err := readFile(dir, p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte{0, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ReadAttestation(b)
		if err != nil {
			return
		}
		a.Endorsements()
		parseVMConfig(a.Config)
	})
}

// The kernel's certificate table (SNP_GET_EXT_REPORT) in the cert chain gives the same VCEK and
// ASK as the certificates themselves.
func TestEndorsementsFromCertTable(t *testing.T) {
	_, vcekPEM, askPEM := realReportInputs(t)
	der := func(b []byte) []byte { blk, _ := pem.Decode(b); return blk.Bytes }
	table := (&abi.CertTable{Entries: []abi.CertTableEntry{
		{GUID: uuid.MustParse(guidASK), RawCert: der(askPEM)},
		{GUID: uuid.MustParse(guidVCEK), RawCert: der(vcekPEM)},
	}}).Marshal()
	a := &Attestation{CertChain: [][]byte{table}}
	vcek, ask, err := a.Endorsements()
	if err != nil || !bytes.Equal(vcek, der(vcekPEM)) || !bytes.Equal(ask, der(askPEM)) {
		t.Errorf("from the table: %v", err)
	}
	a = &Attestation{CertChain: [][]byte{askPEM, vcekPEM}}
	vcek2, ask2, err := a.Endorsements()
	if err != nil || !bytes.Equal(vcek2, vcek) || !bytes.Equal(ask2, ask) {
		t.Errorf("from PEM: %v", err)
	}
	if _, _, err := (&Attestation{CertChain: [][]byte{[]byte("junk")}}).Endorsements(); err == nil {
		t.Error("junk cert chain entry accepted")
	}
}

func notChecked(v *AttestationVerification, name string) bool {
	for _, n := range v.NotChecked {
		if n.Name == name {
			return true
		}
	}
	return false
}
