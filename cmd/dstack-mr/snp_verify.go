package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/snp"
)

func snpVerifyFlags() []cli.Flag {
	const cat = "SEV-SNP attestation"
	return []cli.Flag{
		&cli.StringFlag{Name: "vcek", Category: cat, Usage: "the chip's VCEK certificate (PEM or DER), when the SEV-SNP attestation carries no cert chain"},
		&cli.StringFlag{Name: "ask", Category: cat, Usage: "AMD's ASK certificate for the chip's product line (PEM or DER), when the attestation carries none"},
	}
}

// snpVerifyOnlyFlags are verify's flags that only TDX attestations use.
var snpRefusedVerifyFlags = []string{"quote", "info", "event-log", "vm-config", "collateral", "tcb-policy"}

// verifySNPAttestation verifies --attestation (data, read by the caller) when it is dstack's
// SEV-SNP attestation; handled is false for anything else (TDX forms go on to verify.Verify).
func verifySNPAttestation(c *cli.Context, log *logrus.Logger, data []byte) (handled bool, err error) {
	path := c.String("attestation")
	if data == nil {
		if c.IsSet("vcek") || c.IsSet("ask") {
			return true, fmt.Errorf("--vcek and --ask apply to an SEV-SNP --attestation")
		}
		return false, nil
	}
	att, err := snp.ReadAttestation(data)
	if err != nil {
		if c.IsSet("vcek") || c.IsSet("ask") {
			return true, fmt.Errorf("--attestation %s: %w", path, err)
		}
		return false, nil
	}
	for _, f := range append(snpRefusedVerifyFlags, machineFlagNames()...) {
		if c.IsSet(f) {
			return true, fmt.Errorf("--%s does not apply to an SEV-SNP attestation (its launch shape comes from vm_config.sev_snp_measurement)", f)
		}
	}
	opts := snp.AttestationOptions{ExpectedApp: map[string]string{}}
	for flag, dst := range map[string]*[]byte{"vcek": &opts.VCEK, "ask": &opts.ASK} {
		if p := c.String(flag); p != "" {
			if *dst, err = readRegular(flag, p, 1<<20); err != nil {
				return true, err
			}
		}
	}
	if s := c.String("time"); s != "" {
		if opts.Now, err = time.Parse(time.RFC3339, s); err != nil {
			return true, fmt.Errorf("--time %q: want RFC 3339, e.g. 2026-06-17T00:00:00Z", s)
		}
	}
	for flag, key := range map[string]string{"app-id": "app_id", "compose-hash": "compose_hash", "instance-id": "instance_id", "key-provider": "key_provider", "key-provider-id": "key_provider_id"} {
		if c.IsSet(flag) {
			opts.ExpectedApp[key] = strings.TrimPrefix(strings.TrimSpace(c.String(flag)), "0x")
		}
	}
	opts.ExpectedOSImageHash = strings.TrimPrefix(strings.TrimSpace(c.String("os-image-hash")), "0x")
	if c.NArg() > 1 {
		return true, fmt.Errorf("verify takes at most one IMAGE, got %d arguments", c.NArg())
	}
	if c.NArg() == 1 && c.String("measurement") != "" {
		return true, fmt.Errorf("give IMAGE or --measurement (measurement.snp.cbor), not both")
	}
	if p := c.String("measurement"); p != "" {
		// The relying party's own launch document: MEASUREMENT is predicted from it, as a
		// TDX lite verification from a measurement.tdx.cbor they trust.
		b, err := readRegular("measurement", p, 1<<20)
		if err != nil {
			return true, err
		}
		if opts.Image, err = snp.Decode(b); err != nil {
			return true, fmt.Errorf("--measurement %s: %w", p, err)
		}
	}
	if c.NArg() == 1 {
		// Full mode: the expected image's own SEV-SNP document.
		src, err := snpFromImage(c, c.Args().First(), log)
		if err != nil {
			return true, err
		}
		opts.Image, opts.ImageOSImageHash = src.doc, src.osImageHash
	}
	v, err := snp.VerifyAttestation(att, opts)
	if err != nil {
		return true, fmt.Errorf("--attestation %s: %w", path, err)
	}
	out := struct {
		SchemaVersion int `json:"schema_version"`
		*snp.AttestationVerification
		ToolVersion string `json:"tool_version"`
	}{jsonSchemaVersion, v, toolVersion()}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, out); err != nil {
			return true, err
		}
	} else {
		printSNPVerification(c.App.Writer, v)
	}
	if !v.Verified {
		return true, &exitError{code: exitNotVerified, err: errors.New("attestation NOT verified")}
	}
	return true, nil
}

func machineFlagNames() []string {
	var out []string
	for _, f := range verifyMachineFlags() {
		out = append(out, f.Names()[0])
	}
	return out
}

func printSNPVerification(w io.Writer, v *snp.AttestationVerification) {
	verdict := "NOT VERIFIED"
	if v.Verified {
		verdict = "VERIFIED"
	}
	r := v.Report
	fmt.Fprintf(w, "%s (%s)\n", verdict, v.TEEVariant)
	fmt.Fprintf(w, "report: version %d, %s, policy %s, VMPL %d, TCB %s (reported %s, current %s)\n", r.Version, r.ProductLine, r.Policy, r.VMPL, r.TCBStatus, r.ReportedTCB, r.CurrentTCB)
	fmt.Fprintf(w, "MEASUREMENT: %s\nHOST_DATA:   %s\n", r.Measurement, r.HostData)
	for _, c := range append(append([]snp.ReportCheck{}, r.Checks...), v.Checks...) {
		mark := "ok  "
		if !c.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %-28s %s\n", mark, c.Name, c.Detail)
	}
	for _, c := range v.NotChecked {
		fmt.Fprintf(w, "  --   %-28s %s\n", c.Name, c.Detail)
	}
	if v.OSImageHash != "" {
		why := map[string]string{
			"pinned-document":      "pinned by you (--os-image-hash), bound to the measured document by its sha256sum.txt",
			"image":                "the expected image's, whose document the MEASUREMENT matched",
			"measurement-document": "named by the VM's own document (host-supplied), not pinned by you",
			"vm_config":            "vm_config's (host-supplied), attested by nothing",
		}[v.OSImageHashSource]
		fmt.Fprintf(w, "os_image_hash: %s (%s)\n", v.OSImageHash, why)
	}
	if a := v.App; a != nil {
		fmt.Fprintf(w, "app (mr_config, bound by HOST_DATA): app_id %s, compose_hash %s, instance_id %s, key_provider %s\n", orDash(a.AppID), orDash(a.ComposeHash), orDash(a.InstanceID), orDash(a.KeyProvider))
	}
	fmt.Fprintf(w, "KMS: mr_system %s, mr_aggregated %s, device_id %s\n", r.MRSystem, r.MRAggregated, r.DeviceID)
	fmt.Fprintf(w, "runtime events: %d, not attested on SEV-SNP\n", len(v.RuntimeEvents))
}
