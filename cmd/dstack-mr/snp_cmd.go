package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/snp"
)

const (
	platformTDX    = "tdx"
	platformSEVSNP = "sev-snp"
)

func platformFlag() cli.Flag {
	return &cli.StringFlag{Name: "platform", Value: platformTDX,
		Usage: "tdx (MRTD and RTMR0-2 with the image's bios) or sev-snp (the AMD SEV-SNP launch MEASUREMENT with the image's bios-sev)"}
}

const snpCategory = "SEV-SNP (--platform sev-snp)"

// snpMeasureFlags are measure's flags for the SEV-SNP launch shape.
func snpMeasureFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "vcpu-type", Value: snp.DefaultVCPUType, Category: snpCategory,
			Usage: "QEMU -cpu model (dstack-vmm hard-codes EPYC-v4); a comma-separated list measures several. Known: EPYC[-v1..v4|-IBPB], EPYC-Rome[-v1..v3], EPYC-Milan[-v1|-v2], EPYC-Genoa[-v1]"},
		&cli.StringFlag{Name: "guest-features", Value: "1", Category: snpCategory,
			Usage: "the VMSA's SEV_FEATURES (dstack: 1, SNPActive); decimal or 0x-hex"},
		&cli.StringFlag{Name: "measurement", Category: snpCategory,
			Usage: "measure from an image's measurement.snp.cbor instead of IMAGE or raw files"},
	}
}

// selectedPlatform reads --platform and refuses the SEV-SNP flags with TDX.
func selectedPlatform(c *cli.Context) (string, error) {
	p := c.String("platform")
	switch p {
	case platformTDX:
		for _, f := range []string{"vcpu-type", "guest-features", "measurement"} {
			if c.IsSet(f) {
				return "", fmt.Errorf("--%s applies to --platform sev-snp only", f)
			}
		}
	case platformSEVSNP:
	default:
		return "", fmt.Errorf("--platform %q: want tdx or sev-snp", p)
	}
	return p, nil
}

// snpIgnoredFlags refuses flags the SEV-SNP launch digest does not depend on, so that nobody
// believes a value covers them.
func snpIgnoredFlags(c *cli.Context, keep ...string) error {
	keepSet := map[string]bool{}
	for _, k := range keep {
		keepSet[k] = true
	}
	var names []string
	for _, f := range append(machineFlags(), &cli.BoolFlag{Name: "kernel-header-normalized"}, &cli.IntFlag{Name: "format-version"}) {
		n := f.Names()[0]
		if !keepSet[n] && c.IsSet(n) {
			names = append(names, "--"+n)
		}
	}
	if len(names) > 0 {
		return fmt.Errorf("%s: not part of the SEV-SNP launch measurement (it covers the firmware, kernel, initrd, command line, vCPU count and type, and guest features); drop %s with --platform sev-snp",
			strings.Join(names, ", "), map[bool]string{true: "it", false: "them"}[len(names) == 1])
	}
	return nil
}

// snpSource is what an SEV-SNP launch digest is computed from, and how the output names it.
type snpSource struct {
	doc               *snp.Measurement
	fw                *snp.Firmware // nil when read from a document
	inputs            snpInputsJSON
	osImageHash       string
	checksumsVerified *bool
	warnings          []string
	// shipped is the image's own measurement.snp.cbor as sha256sum.txt lists it, if it does.
	shipped *shippedDocJSON
}

// shippedDocJSON compares the document an image ships with the one its files give.
type shippedDocJSON struct {
	SHA256  string `json:"sha256"`
	Matches bool   `json:"matches"`
}

type snpFileJSON struct {
	Path   string `json:"path"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
}

type snpFirmwareJSON struct {
	snpFileJSON
	GPA            uint64 `json:"gpa"`
	HashesTableGPA uint32 `json:"hashes_table_gpa"`
	ResetEIP       uint32 `json:"reset_eip"`
}

type snpInputsJSON struct {
	Source   string           `json:"source"`
	Firmware *snpFirmwareJSON `json:"firmware,omitempty"`
	Kernel   *snpFileJSON     `json:"kernel,omitempty"`
	Initrd   *snpFileJSON     `json:"initrd,omitempty"`
	Cmdline  string           `json:"cmdline"`
}

func fileSum(path string, b []byte) *snpFileJSON {
	s := sha256.Sum256(b)
	return &snpFileJSON{Path: path, Size: uint64(len(b)), SHA256: hex.EncodeToString(s[:])}
}

// loadSNPSource reads the launch inputs from --measurement, raw files or IMAGE.
func loadSNPSource(c *cli.Context, log *logrus.Logger) (*snpSource, error) {
	raw := c.IsSet("firmware") || c.IsSet("kernel") || c.IsSet("initrd") || c.IsSet("cmdline")
	doc := c.String("measurement")
	switch {
	case c.NArg() > 1:
		return nil, fmt.Errorf("measure takes one IMAGE, got %d arguments", c.NArg())
	case doc != "" && (raw || c.NArg() == 1):
		return nil, fmt.Errorf("give one of --measurement, IMAGE or --firmware/--kernel/--initrd/--cmdline")
	case doc != "":
		b, err := readRegular("measurement", doc, 1<<20)
		if err != nil {
			return nil, err
		}
		m, err := snp.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("--measurement %s: %w", doc, err)
		}
		return &snpSource{doc: m, inputs: snpInputsJSON{Source: doc, Cmdline: m.Cmdline}}, nil
	case c.NArg() == 1 && raw:
		return nil, fmt.Errorf("give either IMAGE or --firmware/--kernel/--initrd/--cmdline, not both")
	case c.NArg() == 1:
		return snpFromImage(c, c.Args().First(), log)
	case !raw:
		return nil, fmt.Errorf("nothing to measure: give IMAGE (metadata.json, image directory or release tarball), --firmware and --kernel, or --measurement")
	}
	if c.String("firmware") == "" || c.String("kernel") == "" {
		return nil, fmt.Errorf("raw mode needs --firmware (an AmdSev OVMF) and --kernel (and usually --initrd and --cmdline)")
	}
	fwBytes, err := readRegular("firmware", c.String("firmware"), maxFirmwareBytes)
	if err != nil {
		return nil, err
	}
	kernel, err := readRegular("kernel", c.String("kernel"), maxKernelBytes)
	if err != nil {
		return nil, err
	}
	src := &snpSource{inputs: snpInputsJSON{Source: "raw", Kernel: fileSum(c.String("kernel"), kernel), Cmdline: c.String("cmdline")}}
	var initrdSum []byte
	if p := c.String("initrd"); p != "" {
		f, _, err := openRegular("initrd", p, 0)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--initrd %s: %w", p, err)
		}
		initrdSum = h.Sum(nil)
		src.inputs.Initrd = &snpFileJSON{Path: p, Size: uint64(n), SHA256: hex.EncodeToString(initrdSum)}
	}
	if err := src.build(c.String("firmware"), fwBytes, kernel, initrdSum, c.String("cmdline")); err != nil {
		return nil, err
	}
	return src, nil
}

func snpFromImage(c *cli.Context, path string, log *logrus.Logger) (*snpSource, error) {
	opts := imageOptions(c, log)
	opts.SEV = true // bios-sev is read, and must be listed in sha256sum.txt
	img, err := openImageWith(c, path, log, opts)
	if err != nil {
		return nil, err
	}
	src := &snpSource{osImageHash: img.OSImageHash, inputs: snpInputsJSON{Source: img.Source, Cmdline: img.Cmdline,
		Kernel: fileSum(img.Metadata.Kernel, img.Kernel)}}
	ok := img.Checksums.Status == images.StatusOK
	src.checksumsVerified = &ok
	fwName, fwBytes := img.Metadata.BiosSEV, img.FirmwareSEV
	if fwName == "" {
		// dstack-vmm launches an SEV-SNP guest with bios when the image names no bios-sev.
		fwName, fwBytes = img.Metadata.Bios, img.Firmware
		src.warnings = append(src.warnings, fmt.Sprintf("firmware: metadata.json has no bios-sev; measured with bios (%s), as dstack-vmm then launches", fwName))
	}
	var initrdSum []byte
	if img.Initrd != nil {
		if len(img.Initrd.SHA256) != sha256.Size {
			return nil, fmt.Errorf("%s: the initrd's SHA-256 was not computed", path)
		}
		initrdSum = img.Initrd.SHA256
		src.inputs.Initrd = &snpFileJSON{Path: img.Metadata.Initrd, Size: img.Initrd.Size, SHA256: hex.EncodeToString(initrdSum)}
	}
	if err := src.build(fwName, fwBytes, img.Kernel, initrdSum, img.Cmdline); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, f := range img.Checksums.Files {
		if f.Name != snp.FileName {
			continue
		}
		enc, err := snp.Encode(src.doc)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(enc)
		ours := hex.EncodeToString(sum[:])
		src.shipped = &shippedDocJSON{SHA256: f.Expected, Matches: strings.EqualFold(f.Expected, ours)}
		if !src.shipped.Matches {
			src.warnings = append(src.warnings, fmt.Sprintf("%s: the image ships one with SHA-256 %s, but its files give %s (SHA-256 %s): "+
				"verifiers that trust the shipped document expect another MEASUREMENT than these files launch", snp.FileName, f.Expected, snp.FileName, ours))
		}
	}
	return src, nil
}

// build parses the firmware and assembles the document the launch digest is computed from.
func (s *snpSource) build(fwName string, fwBytes, kernel, initrdSum []byte, cmdline string) error {
	fw, err := snp.ParseFirmware(fwBytes)
	if err != nil {
		return fmt.Errorf("firmware %s: %w", fwName, err)
	}
	ks := sha256.Sum256(kernel)
	doc, err := snp.FromFirmware(fw, cmdline, ks[:], initrdSum)
	if err != nil {
		return err
	}
	s.doc, s.fw = doc, fw
	if !pinsRootfs(cmdline) {
		s.warnings = append(s.warnings, "cmdline: no dstack.rootfs_hash= with 64 hex digits: dstack's verifiers refuse an SEV-SNP measurement whose command line pins no root filesystem")
	}
	s.inputs.Firmware = &snpFirmwareJSON{snpFileJSON: *fileSum(fwName, fwBytes), GPA: fw.GPA, HashesTableGPA: fw.HashesTableGPA, ResetEIP: fw.ResetEIP}
	return nil
}

// pinsRootfs says whether the command line pins the root filesystem as dstack's SNP verifiers
// require (the document has no other rootfs field).
func pinsRootfs(cmdline string) bool {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "dstack.rootfs_hash="); ok {
			b, err := hex.DecodeString(v)
			return err == nil && len(b) == sha256.Size
		}
	}
	return false
}

// snpMeasureResult is one launch shape's answer, as printed with --json.
type snpMeasureResult struct {
	SchemaVersion int    `json:"schema_version"`
	Platform      string `json:"platform"`
	Measurement   string `json:"measurement"`
	// CPU is the count asked for, VCPUs the count dstack-vmm starts (and the PSP measures).
	CPU           int              `json:"cpu"`
	VCPUs         int              `json:"vcpus"`
	VCPUType      string           `json:"vcpu_type"`
	VCPUSignature string           `json:"vcpu_signature"`
	GuestFeatures uint64           `json:"guest_features"`
	Hugepages     bool             `json:"hugepages"`
	NUMANodes     int              `json:"numa_nodes"`
	Document      *snp.Measurement `json:"document"`
	// DocumentSHA256 is the SHA-256 of the document's canonical encoding: its sha256sum.txt line.
	DocumentSHA256    string          `json:"document_sha256"`
	ShippedDocument   *shippedDocJSON `json:"shipped_document,omitempty"`
	Inputs            snpInputsJSON   `json:"inputs"`
	OSImageHash       string          `json:"os_image_hash,omitempty"`
	ChecksumsVerified *bool           `json:"checksums_verified,omitempty"`
	Warnings          []string        `json:"warnings"`
	ToolVersion       string          `json:"tool_version"`
}

func measureSNP(c *cli.Context, log *logrus.Logger) error {
	if err := snpIgnoredFlags(c, "cpu", "hugepages", "numa-nodes"); err != nil {
		return err
	}
	cpus, err := splitList("cpu", c.String("cpu"))
	if err != nil {
		return err
	}
	types, err := splitList("vcpu-type", c.String("vcpu-type"))
	if err != nil {
		return err
	}
	features, err := strconv.ParseUint(c.String("guest-features"), 0, 64)
	if err != nil {
		return fmt.Errorf("--guest-features %q: want a decimal or 0x-hex number", c.String("guest-features"))
	}
	hugepages, nodes := c.Bool("hugepages"), 1
	if c.IsSet("numa-nodes") {
		if !hugepages {
			return fmt.Errorf("--numa-nodes describes a hugepages VM: give --hugepages too")
		}
		list, err := splitList("numa-nodes", c.String("numa-nodes"))
		if err != nil {
			return err
		}
		nodes = len(list)
	}
	type shape struct {
		cpu, vcpus int
		typ        string
	}
	var shapes []shape
	for _, cs := range cpus {
		n, err := strconv.Atoi(cs)
		if err != nil || n <= 0 {
			return fmt.Errorf("--cpu %q: want a positive whole number", cs)
		}
		for _, t := range types {
			if _, err := snp.VCPUSignature(t); err != nil {
				return fmt.Errorf("--vcpu-type: %w", err)
			}
			v := snp.EffectiveVCPUs(n, hugepages, nodes)
			if v > snp.MaxVCPUs {
				return fmt.Errorf("--cpu %d: %d vCPUs, at most %d", n, v, snp.MaxVCPUs)
			}
			shapes = append(shapes, shape{n, v, t})
		}
	}
	src, err := loadSNPSource(c, log)
	if err != nil {
		return err
	}
	enc, err := snp.Encode(src.doc)
	if err != nil {
		return err
	}
	docSum := sha256.Sum256(enc)
	warnings := warnOnce(log, [][]string{src.warnings})
	version := toolVersion()
	results := make([]snpMeasureResult, 0, len(shapes))
	for _, s := range shapes {
		l := snp.Launch{VCPUs: s.vcpus, VCPUType: s.typ, GuestFeatures: features}
		d, err := src.doc.LaunchDigest(l)
		if err != nil {
			return err
		}
		sig, _ := snp.VCPUSignature(s.typ)
		results = append(results, snpMeasureResult{
			SchemaVersion: jsonSchemaVersion, Platform: platformSEVSNP, Measurement: hex.EncodeToString(d[:]),
			CPU: s.cpu, VCPUs: s.vcpus, VCPUType: s.typ, VCPUSignature: fmt.Sprintf("%#x", sig), GuestFeatures: features,
			Hugepages: hugepages, NUMANodes: nodes, Document: src.doc, DocumentSHA256: hex.EncodeToString(docSum[:]), ShippedDocument: src.shipped,
			Inputs: src.inputs, OSImageHash: src.osImageHash, ChecksumsVerified: src.checksumsVerified,
			Warnings: warnings, ToolVersion: version,
		})
	}
	if log.IsLevelEnabled(logrus.DebugLevel) {
		for i, sec := range src.doc.OVMFSections {
			log.Debugf("SEV metadata section %d: %s at %#x, %#x bytes", i, sec.Type, sec.GPA, sec.Size)
		}
		log.Debugf("command line %q (hashed with a trailing NUL)", src.doc.Cmdline)
	}
	switch {
	case c.Bool("json-lines"):
		for _, r := range results {
			if err := printJSONLine(c.App.Writer, r); err != nil {
				return err
			}
		}
		return nil
	case c.Bool("json") && len(results) == 1:
		return printJSON(c.App.Writer, results[0])
	case c.Bool("json"):
		return printJSON(c.App.Writer, results)
	}
	printSNPMeasurements(c.App.Writer, results)
	return nil
}

func printSNPMeasurements(w io.Writer, results []snpMeasureResult) {
	for _, r := range results {
		if len(results) == 1 {
			fmt.Fprintf(w, "MEASUREMENT: %s\n\n", r.Measurement)
		} else {
			fmt.Fprintf(w, "cpu %d (%d vCPUs), %s: %s\n", r.CPU, r.VCPUs, r.VCPUType, r.Measurement)
		}
	}
	r := results[0]
	if len(results) == 1 {
		fmt.Fprintf(w, "vCPUs: %d (%s, CPUID signature %s), guest features %#x\n", r.VCPUs, r.VCPUType, r.VCPUSignature, r.GuestFeatures)
	} else {
		fmt.Fprintf(w, "\nguest features %#x\n", r.GuestFeatures)
	}
	d := r.Document
	if f := r.Inputs.Firmware; f != nil {
		fmt.Fprintf(w, "firmware: %s (%d bytes)\n", f.Path, f.Size)
	}
	fmt.Fprintf(w, "ovmf_hash: %s\nhashes table at %#x, AP reset EIP %#x, %d SEV metadata sections\n", d.OVMFHash, d.HashesTableGPA, d.ResetEIP, len(d.OVMFSections))
	fmt.Fprintf(w, "%s sha256: %s", snp.FileName, r.DocumentSHA256)
	if s := r.ShippedDocument; s != nil {
		fmt.Fprintf(w, " (the image ships %s: %s)", map[bool]string{true: "the same", false: "ANOTHER, " + s.SHA256}[s.Matches], map[bool]string{true: "matches", false: "MISMATCH"}[s.Matches])
	}
	fmt.Fprintln(w)
	if r.OSImageHash != "" || (r.ChecksumsVerified != nil && !*r.ChecksumsVerified) {
		note := ""
		if r.ChecksumsVerified != nil && !*r.ChecksumsVerified {
			note = " (checksums NOT verified: --no-verify-checksums)"
		}
		fmt.Fprintf(w, "os_image_hash: %s%s\n", orDash(r.OSImageHash), note)
	}
}

func printJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// snpDocResult is `image measurement --platform sev-snp --json`.
type snpDocResult struct {
	SchemaVersion   int              `json:"schema_version"`
	Platform        string           `json:"platform"`
	Path            string           `json:"path"`
	Size            int              `json:"size"`
	SHA256          string           `json:"sha256"`
	SHA256SumLine   string           `json:"sha256sum_line"`
	Document        *snp.Measurement `json:"document"`
	ShippedDocument *shippedDocJSON  `json:"shipped_document,omitempty"`
	Inputs          snpInputsJSON    `json:"inputs"`
	OSImageHash     string           `json:"os_image_hash,omitempty"`
	Warnings        []string         `json:"warnings"`
	ToolVersion     string           `json:"tool_version"`
}

// imageMeasurementSNP writes the image's measurement.snp.cbor.
func imageMeasurementSNP(c *cli.Context, out string, log *logrus.Logger) error {
	if err := snpIgnoredFlags(c); err != nil {
		return err
	}
	src, err := snpFromImage(c, c.Args().First(), log)
	if err != nil {
		return err
	}
	enc, err := snp.Encode(src.doc)
	if err != nil {
		return err
	}
	// Read back what is written: the reader must accept it and give the same document.
	back, err := snp.Decode(enc)
	if err != nil {
		return fmt.Errorf("%s does not read back: %w", snp.FileName, err)
	}
	if again, err := snp.Encode(back); err != nil || string(again) != string(enc) {
		return fmt.Errorf("%s does not read back to the same bytes", snp.FileName)
	}
	if err := writeFileAtomic(out, enc); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	sum := sha256.Sum256(enc)
	res := snpDocResult{SchemaVersion: jsonSchemaVersion, Platform: platformSEVSNP, Path: out, Size: len(enc), SHA256: hex.EncodeToString(sum[:]),
		SHA256SumLine: fmt.Sprintf("%s  %s", hex.EncodeToString(sum[:]), snp.FileName), Document: src.doc, ShippedDocument: src.shipped, Inputs: src.inputs,
		OSImageHash: src.osImageHash, Warnings: warnOnce(log, [][]string{src.warnings}), ToolVersion: toolVersion()}
	if c.Bool("json") {
		return printJSON(c.App.Writer, res)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s (%d bytes, version %d, sha256 %s)\n", out, len(enc), snp.Version, res.SHA256)
	if c.Bool("sha256sum-line") {
		fmt.Fprintln(c.App.Writer, res.SHA256SumLine)
	}
	return nil
}
