package snp

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/dstack-mr/dstack-mr/internal/scale"
	"github.com/google/go-sev-guest/abi"
)

// maxAttestationBytes bounds a decoded attestation (a report, two certificates, a config: ~16 KiB).
const maxAttestationBytes = 1 << 20

// RuntimeEvent is one of dstack's runtime events as an attestation carries it. On SEV-SNP
// nothing in the hardware report binds them.
type RuntimeEvent struct {
	Event   string `json:"event"`
	Payload Hex    `json:"payload"`
}

// Attestation is dstack's VersionedAttestation V0 with the DstackAmdSevSnp quote (SCALE variant 3).
type Attestation struct {
	Report        []byte
	CertChain     [][]byte
	MRConfig      string
	RuntimeEvents []RuntimeEvent
	ReportData    []byte
	Config        string
}

// ErrNotSNP says an attestation is well formed but of another TEE.
var ErrNotSNP = errors.New("not an SEV-SNP attestation")

// ReadAttestation reads dstack's attestation in any form it travels in: the verifier's
// {"attestation": "<hex>"} JSON, bare hex, or the SCALE bytes.
func ReadAttestation(data []byte) (*Attestation, error) {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '{' {
		var w struct {
			Attestation *string `json:"attestation"`
		}
		if err := json.Unmarshal(t, &w); err != nil || w.Attestation == nil {
			return nil, fmt.Errorf("attestation: a JSON attestation is {\"attestation\": \"<hex>\"}")
		}
		t = []byte(*w.Attestation)
	}
	if raw, err := hex.DecodeString(string(t)); err == nil && len(t) > 0 {
		return DecodeAttestation(raw)
	}
	return DecodeAttestation(data)
}

// DecodeAttestation decodes the SCALE form: version 0, quote variant 3 (report, cert chain,
// mr_config), runtime events, report_data, config.
func DecodeAttestation(raw []byte) (*Attestation, error) {
	if len(raw) > maxAttestationBytes {
		return nil, fmt.Errorf("attestation: %d bytes, over the %d-byte limit", len(raw), maxAttestationBytes)
	}
	r := scale.NewReader(raw, "attestation ")
	head, err := r.Take(2, "variant")
	if err != nil {
		return nil, err
	}
	if head[0] != 0 {
		return nil, fmt.Errorf("attestation: versioned attestation variant %d: only 0 (SCALE) is known", head[0])
	}
	if head[1] != 3 {
		return nil, fmt.Errorf("attestation: quote variant %d: %w", head[1], ErrNotSNP)
	}
	a := &Attestation{}
	if a.Report, err = r.Bytes("report"); err != nil {
		return nil, err
	}
	n, err := r.Count("cert_chain count")
	if err != nil {
		return nil, err
	}
	for i := uint64(0); i < n; i++ {
		c, err := r.Bytes(fmt.Sprintf("cert_chain[%d]", i))
		if err != nil {
			return nil, err
		}
		a.CertChain = append(a.CertChain, c)
	}
	mc, err := r.Bytes("mr_config")
	if err != nil {
		return nil, err
	}
	a.MRConfig = string(mc)
	if n, err = r.Count("runtime event count"); err != nil {
		return nil, err
	}
	for i := uint64(0); i < n; i++ {
		name, err := r.Bytes(fmt.Sprintf("runtime event %d name", i))
		if err != nil {
			return nil, err
		}
		p, err := r.Bytes(fmt.Sprintf("runtime event %d payload", i))
		if err != nil {
			return nil, err
		}
		a.RuntimeEvents = append(a.RuntimeEvents, RuntimeEvent{Event: string(name), Payload: p})
	}
	if a.ReportData, err = r.Take(64, "report_data"); err != nil {
		return nil, err
	}
	cfg, err := r.Bytes("config")
	if err != nil {
		return nil, err
	}
	a.Config = string(cfg)
	if r.Offset() != len(raw) {
		return nil, fmt.Errorf("attestation: %d bytes after its end", len(raw)-r.Offset())
	}
	return a, nil
}

// Cert-table GUIDs of the VCEK and ASK (SEV-SNP firmware ABI, SNP_GET_EXT_REPORT).
const (
	guidVCEK = "63da758d-e664-4564-adc5-f4b93be8accd"
	guidASK  = "4ab7b379-bbac-4fe4-a02f-05aef327c782"
)

// Endorsements picks the VCEK and ASK out of the attestation's cert chain: certificates (PEM or
// DER) told apart by subject, or the kernel's certificate table blob, by GUID. Absent ones are nil.
func (a *Attestation) Endorsements() (vcek, ask []byte, err error) {
	for i, e := range a.CertChain {
		der := e
		if blk, _ := pem.Decode(e); blk != nil {
			der = blk.Bytes
		}
		if c, perr := x509.ParseCertificate(der); perr == nil {
			switch {
			case c.Subject.CommonName == "SEV-VCEK":
				vcek = der
			case strings.HasPrefix(c.Subject.CommonName, "SEV-"):
				ask = der
			default:
				return nil, nil, fmt.Errorf("attestation cert_chain[%d]: certificate %q is neither a VCEK nor an ASK", i, c.Subject.CommonName)
			}
			continue
		}
		var t abi.CertTable
		if terr := t.Unmarshal(e); terr != nil {
			return nil, nil, fmt.Errorf("attestation cert_chain[%d]: neither a certificate nor a certificate table", i)
		}
		if b, err := t.GetByGUIDString(guidVCEK); err == nil {
			vcek = b
		}
		if b, err := t.GetByGUIDString(guidASK); err == nil {
			ask = b
		}
	}
	return vcek, ask, nil
}

// LaunchDocument is the vm_config's sev_snp_measurement: the image's measurement.snp.cbor with
// the sha256sum.txt that lists it, and the launch shape; or, from the first captures, the launch
// inputs inline (Legacy).
type LaunchDocument struct {
	Measurement  *Measurement
	Launch       Launch
	ChecksumFile []byte // nil in the legacy form
	Legacy       bool
}

// vmConfig is what SEV-SNP verification reads of dstack's vm_config.
type vmConfig struct {
	OSImageHash string `json:"os_image_hash"`
	MRConfig    string `json:"mr_config"`
	SNP         string `json:"sev_snp_measurement"`
}

func parseVMConfig(cfg string) (*vmConfig, *LaunchDocument, error) {
	var vc vmConfig
	if err := json.Unmarshal([]byte(cfg), &vc); err != nil {
		return nil, nil, fmt.Errorf("vm_config: %w", err)
	}
	if vc.SNP == "" {
		return &vc, nil, fmt.Errorf("vm_config has no sev_snp_measurement: the launch inputs are unknown")
	}
	var split struct {
		ChecksumFile  *string `json:"checksum_file"`
		Measurement   *string `json:"measurement"`
		VCPUs         int     `json:"vcpus"`
		VCPUType      *string `json:"vcpu_type"`
		GuestFeatures uint64  `json:"guest_features"`
	}
	dec := json.NewDecoder(strings.NewReader(vc.SNP))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&split); err == nil && split.Measurement != nil && split.ChecksumFile != nil && split.VCPUType != nil {
		cf, err1 := base64.StdEncoding.DecodeString(*split.ChecksumFile)
		mb, err2 := base64.StdEncoding.DecodeString(*split.Measurement)
		if err := errors.Join(err1, err2); err != nil {
			return nil, nil, fmt.Errorf("vm_config sev_snp_measurement: not base64: %w", err)
		}
		m, err := Decode(mb)
		if err != nil {
			return nil, nil, fmt.Errorf("vm_config sev_snp_measurement.measurement: %w", err)
		}
		return &vc, &LaunchDocument{Measurement: m, ChecksumFile: cf,
			Launch: Launch{VCPUs: split.VCPUs, VCPUType: *split.VCPUType, GuestFeatures: split.GuestFeatures}}, nil
	}
	var legacy LegacyLaunchInputs
	dec = json.NewDecoder(strings.NewReader(vc.SNP))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&legacy); err != nil || legacy.VCPUType == nil {
		return nil, nil, fmt.Errorf("vm_config sev_snp_measurement: neither {checksum_file, measurement, vcpus, vcpu_type, guest_features} nor the legacy launch inputs")
	}
	m, launch, err := legacy.Document()
	if err != nil {
		return nil, nil, fmt.Errorf("vm_config sev_snp_measurement (legacy launch inputs): %w", err)
	}
	return &vc, &LaunchDocument{Measurement: m, Legacy: true, Launch: launch}, nil
}

// LegacyLaunchInputs is dstack's MeasurementInput JSON: the inline launch inputs vm_config's
// sev_snp_measurement carried before the split into sha256sum.txt + measurement.snp.cbor.
type LegacyLaunchInputs struct {
	Sections []struct {
		GPA  uint64 `json:"gpa"`
		Size uint64 `json:"size"`
		Type uint32 `json:"section_type"`
	} `json:"ovmf_sections"`
	Cmdline        string  `json:"base_cmdline"`
	OVMFHash       string  `json:"ovmf_hash"`
	KernelHash     string  `json:"kernel_hash"`
	InitrdHash     string  `json:"initrd_hash"`
	HashesTableGPA uint64  `json:"sev_hashes_table_gpa"`
	ResetEIP       uint32  `json:"sev_es_reset_eip"`
	VCPUs          int     `json:"vcpus"`
	VCPUType       *string `json:"vcpu_type"`
	GuestFeatures  uint64  `json:"guest_features"`
	RootfsHash     string  `json:"rootfs_hash"` // dropped by later releases; not measured
}

// Document is the measurement document and launch shape the inputs describe; a digest that is
// not hex is an error naming it (an empty initrd_hash is the SHA-256 of no initrd).
func (in *LegacyLaunchInputs) Document() (*Measurement, Launch, error) {
	if in.VCPUType == nil {
		return nil, Launch{}, fmt.Errorf("vcpu_type missing")
	}
	digest := func(name, s string) (Hex, error) {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s: not hex: %w", name, err)
		}
		return b, nil
	}
	m := &Measurement{Version: Version, Cmdline: strings.TrimSpace(in.Cmdline), HashesTableGPA: in.HashesTableGPA, ResetEIP: in.ResetEIP}
	var err error
	if m.OVMFHash, err = digest("ovmf_hash", in.OVMFHash); err != nil {
		return nil, Launch{}, err
	}
	if m.KernelHash, err = digest("kernel_hash", in.KernelHash); err != nil {
		return nil, Launch{}, err
	}
	if in.InitrdHash == "" {
		e := sha256.Sum256(nil)
		m.InitrdHash = e[:]
	} else if m.InitrdHash, err = digest("initrd_hash", in.InitrdHash); err != nil {
		return nil, Launch{}, err
	}
	for _, s := range in.Sections {
		m.OVMFSections = append(m.OVMFSections, Section{GPA: s.GPA, Size: s.Size, Type: SectionType(s.Type)})
	}
	if err := m.Validate(); err != nil {
		return nil, Launch{}, err
	}
	return m, Launch{VCPUs: in.VCPUs, VCPUType: *in.VCPUType, GuestFeatures: in.GuestFeatures}, nil
}

// AppFacts are the app identity the mr_config document carries; HOST_DATA binds the document.
type AppFacts struct {
	AppID         string `json:"app_id,omitempty"`
	ComposeHash   string `json:"compose_hash"`
	InstanceID    string `json:"instance_id,omitempty"`
	KeyProvider   string `json:"key_provider,omitempty"`
	KeyProviderID string `json:"key_provider_id,omitempty"`
	Version       int    `json:"version"`
}

// AttestationOptions carries what VerifyAttestation needs beyond the attestation.
type AttestationOptions struct {
	ReportOptions
	// ExpectedOSImageHash, when set, must be the image the CVM runs (hex).
	ExpectedOSImageHash string
	// ExpectedApp maps mr_config keys (app_id, compose_hash, instance_id, key_provider,
	// key_provider_id) to the values the CVM must have.
	ExpectedApp map[string]string
	// Image, when set, is the expected image's own document (full mode): the MEASUREMENT is
	// predicted from it, with the vm_config's launch shape, instead of from the VM's document.
	Image *Measurement
	// ImageOSImageHash is the expected image's os_image_hash (full mode).
	ImageOSImageHash string
}

// AttestationVerification is what VerifyAttestation found: the report's checks, then dstack's
// identity checks, and what was not checked.
type AttestationVerification struct {
	Verified   bool                `json:"verified"`
	TEEVariant string              `json:"tee_variant"`
	Report     *ReportVerification `json:"report"`
	Checks     []ReportCheck       `json:"checks"`
	NotChecked []ReportCheck       `json:"not_checked"`
	// Expected MEASUREMENT from the launch document and shape.
	ExpectedMeasurement Hex    `json:"expected_measurement,omitempty"`
	VCPUs               int    `json:"vcpus,omitempty"`
	VCPUType            string `json:"vcpu_type,omitempty"`
	GuestFeatures       uint64 `json:"guest_features,omitempty"`
	// OSImageHash and where it comes from: "pinned-document" (the os_image_hash the relying
	// party pinned, the SHA-256 of the sha256sum.txt that lists the measured document),
	// "image" (the expected image given), "measurement-document" (the VM's own document names
	// it, not pinned: not verified) or "vm_config" (host-supplied, legacy form).
	OSImageHash       string         `json:"os_image_hash,omitempty"`
	OSImageHashSource string         `json:"os_image_hash_source,omitempty"`
	App               *AppFacts      `json:"app,omitempty"`
	RuntimeEvents     []RuntimeEvent `json:"runtime_events"`
}

func (v *AttestationVerification) check(name string, ok bool, format string, args ...any) bool {
	v.Checks = append(v.Checks, ReportCheck{Name: name, Passed: ok, Detail: fmt.Sprintf(format, args...)})
	return ok
}

// VerifyAttestation verifies a dstack SEV-SNP attestation offline: the report (VerifyReport) with
// the VCEK and ASK of opts or else of the attestation's cert chain; that the report carries the
// attestation's report_data; HOST_DATA = the mr_config document's; MEASUREMENT = the launch
// document's for the vm_config's shape; the document bound to os_image_hash through the
// sha256sum.txt that lists it. Unreadable input is an error; failed checks are reported.
func VerifyAttestation(a *Attestation, opts AttestationOptions) (*AttestationVerification, error) {
	v := &AttestationVerification{TEEVariant: "dstack-amd-sev-snp", RuntimeEvents: a.RuntimeEvents}
	if v.RuntimeEvents == nil {
		v.RuntimeEvents = []RuntimeEvent{}
	}
	vcek, ask, err := a.Endorsements()
	if err != nil {
		return nil, err
	}
	ro := opts.ReportOptions
	if ro.VCEK == nil {
		ro.VCEK = vcek
	}
	if ro.ASK == nil {
		ro.ASK = ask
	}
	if ro.VCEK == nil || ro.ASK == nil {
		return nil, fmt.Errorf("the attestation carries no VCEK/ASK certificates: give them (fetched ahead of time from AMD's KDS for this chip and TCB); nothing is fetched while verifying")
	}
	rv, err := VerifyReport(a.Report, ro)
	if err != nil {
		return nil, err
	}
	v.Report = rv
	ok := rv.Acceptable
	ok = v.check("report-data", bytes.Equal(a.ReportData, rv.ReportData), "the attestation's report_data is the report's REPORT_DATA") && ok

	hd := MRConfigHostData([]byte(a.MRConfig))
	ok = v.check("host-data", bytes.Equal(hd[:], rv.HostData), "HOST_DATA %s, SHA-256(\"dstack-mr-config-v3:\" ‖ 0 ‖ mr_config) %x", rv.HostData, hd) && ok
	var facts AppFacts
	if err := json.Unmarshal([]byte(a.MRConfig), &facts); err == nil {
		v.App = &facts
	}
	vc, doc, cfgErr := parseVMConfig(a.Config)
	if vc != nil && vc.MRConfig != "" && vc.MRConfig != a.MRConfig {
		ok = v.check("mr-config-consistency", false, "vm_config.mr_config differs from the attestation's mr_config") && ok
	}
	if cfgErr != nil {
		ok = v.check("measurement", false, "%v", cfgErr) && ok
	} else {
		predictFrom := doc.Measurement
		if opts.Image != nil {
			predictFrom = opts.Image
		}
		d, err := predictFrom.LaunchDigest(doc.Launch)
		v.VCPUs, v.VCPUType, v.GuestFeatures = doc.Launch.VCPUs, doc.Launch.VCPUType, doc.Launch.GuestFeatures
		measured := false
		switch {
		case err != nil:
			ok = v.check("measurement", false, "launch document: %v", err) && ok
		default:
			v.ExpectedMeasurement = d[:]
			measured = bytes.Equal(d[:], rv.Measurement)
			ok = v.check("measurement", measured, "MEASUREMENT %s, launch document with %d vCPU %s, guest features %#x gives %x",
				rv.Measurement, doc.Launch.VCPUs, doc.Launch.VCPUType, doc.Launch.GuestFeatures, d) && ok
		}
		if opts.Image != nil {
			// Only a MEASUREMENT that matched the expected image's own document says that image
			// is what runs.
			if measured && opts.ImageOSImageHash != "" {
				v.OSImageHash, v.OSImageHashSource = opts.ImageOSImageHash, "image"
			}
		} else if doc.Legacy {
			v.OSImageHash, v.OSImageHashSource = vc.OSImageHash, "vm_config"
			v.NotChecked = append(v.NotChecked, ReportCheck{Name: "os-image-hash", Detail: "legacy inline launch inputs: vm_config's os_image_hash is host-supplied, nothing binds it to the measured image"})
		} else {
			sum := sha256.Sum256(doc.ChecksumFile)
			v.OSImageHash, v.OSImageHashSource = hex.EncodeToString(sum[:]), "measurement-document"
			enc, _ := Encode(doc.Measurement)
			ds := sha256.Sum256(enc)
			listed := checksumLists(doc.ChecksumFile, hex.EncodeToString(ds[:]), FileName)
			ok = v.check("measurement-document-listed", listed, "sha256sum.txt (SHA-256 %x) lists %s with SHA-256 %x", sum, FileName, ds) && ok
			if vc.OSImageHash != "" {
				ok = v.check("os-image-hash-consistency", strings.EqualFold(vc.OSImageHash, v.OSImageHash), "vm_config os_image_hash %s, SHA-256 of its sha256sum.txt %s", vc.OSImageHash, v.OSImageHash) && ok
			}
		}
	}
	for _, k := range []string{"app_id", "compose_hash", "instance_id", "key_provider", "key_provider_id"} {
		want, set := opts.ExpectedApp[k]
		if !set {
			continue
		}
		var got string
		if v.App != nil {
			got = map[string]string{"app_id": v.App.AppID, "compose_hash": v.App.ComposeHash, "instance_id": v.App.InstanceID,
				"key_provider": v.App.KeyProvider, "key_provider_id": v.App.KeyProviderID}[k]
		}
		ok = v.check("expected-"+strings.ReplaceAll(k, "_", "-"), got != "" && strings.EqualFold(got, want), "expected %s %s, mr_config (bound by HOST_DATA) says %s", k, want, orNone(got)) && ok
	}
	if opts.ExpectedOSImageHash != "" {
		bound := v.OSImageHashSource == "measurement-document" || v.OSImageHashSource == "image"
		pinned := v.check("expected-os-image-hash", bound && strings.EqualFold(opts.ExpectedOSImageHash, v.OSImageHash),
			"expected %s, attested %s (from %s)", opts.ExpectedOSImageHash, orNone(v.OSImageHash), orNone(v.OSImageHashSource))
		ok = pinned && ok
		if pinned && v.OSImageHashSource == "measurement-document" {
			v.OSImageHashSource = "pinned-document"
		}
	} else if opts.Image == nil {
		// The one identity rule (as for TDX): the launch document came from the host's
		// vm_config, so the image it names is the relying party's only once they pin it.
		ok = false
		v.NotChecked = append(v.NotChecked, ReportCheck{Name: "os-image-identity", Detail: fmt.Sprintf(
			"required: the launch document comes from the VM's own vm_config (host-supplied) and names os_image_hash %s; "+
				"pin that hash with --os-image-hash if it is the image you expect, or give the image (IMAGE) to measure", orNone(v.OSImageHash))})
	}
	v.NotChecked = append(v.NotChecked,
		ReportCheck{Name: "runtime-events", Detail: "SEV-SNP has no runtime measurement register: the runtime events are host-supplied, not attested"},
		ReportCheck{Name: "revocation", Detail: "AMD's CRL is not consulted (offline)"})
	v.Verified = ok
	return v, nil
}

// checksumLists says whether a sha256sum.txt lists name with the given hex digest.
func checksumLists(file []byte, digest, name string) bool {
	for _, line := range strings.Split(string(file), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.EqualFold(f[0], digest) && strings.TrimPrefix(f[1], "*") == name {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
