package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/pe"
	"github.com/dstack-mr/dstack-mr/verify"
)

func imageCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "examine a dstack OS image (metadata.json, image directory or release tarball)",
		Subcommands: []*cli.Command{{
			Name:      "inspect",
			Usage:     "version, files with sizes and digests, command line pins, initramfs members, checksum status",
			ArgsUsage: "IMAGE",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				&cli.BoolFlag{Name: "members", Usage: "list every initramfs member (by default only their count and size)"},
				&cli.BoolFlag{Name: "no-verify-checksums", Usage: "report checksum mismatches instead of failing (DANGEROUS)"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return fmt.Errorf("image inspect takes one IMAGE")
				}
				img, err := openImage(c, c.Args().First(), log)
				if err != nil {
					return err
				}
				rep := img.Inspect()
				if !c.Bool("members") && rep.Initramfs != nil {
					rep.Initramfs.Entries = nil
				}
				hdr := kernelHeaderReport(img)
				if c.Bool("json") {
					return printJSON(c.App.Writer, struct {
						SchemaVersion int `json:"schema_version"`
						*images.Inspection
						KernelHeader kernelHeader `json:"kernel_header"`
						ToolVersion  string       `json:"tool_version"`
					}{jsonSchemaVersion, rep, hdr, toolVersion()})
				}
				printInspection(c.App.Writer, rep)
				fmt.Fprintf(c.App.Writer, "kernel header: canonical %v, declared normalized %v", hdr.Canonical, hdr.DeclaredNormalized)
				if hdr.Note != "" {
					fmt.Fprintf(c.App.Writer, " (%s)", hdr.Note)
				}
				fmt.Fprintln(c.App.Writer)
				return nil
			},
		}, imageMeasurementCommand(log)},
	}
}

func imageMeasurementCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:      "measurement",
		Usage:     "write the image's lite measurement document (measurement.tdx.cbor, or measurement.snp.cbor with --platform sev-snp)",
		ArgsUsage: "IMAGE",
		Description: "Computes measurement.tdx.cbor for IMAGE (metadata.json, image directory or release tarball):\n" +
			"the image-static inputs of MRTD and RTMR0-2 (both MRTD page orders, the TD HOB witness of the\n" +
			"firmware, the kernel's Authenticode digest, the command line, the initrd's SHA-384), which\n" +
			"verifiers of dstack's lite CVMs check MRs against. Release engineers list it in sha256sum.txt,\n" +
			"so os_image_hash covers it. The encoding is canonical and byte-identical to upstream dstack's.\n\n" +
			"The kernel digest is the shipped file's for a normalized kernel (kernel_header_normalized),\n" +
			"else the kernel as QEMU patches it for RAM >= 0xB0000000 (or exactly 2 GiB). The firmware must\n" +
			"be of the pre202505 generation the document's RTMR0 model names; others are refused.\n\n" +
			"--platform sev-snp writes measurement.snp.cbor (dstack's SevOsImageMeasurement, version 3) instead:\n" +
			"the launch digest of the image's bios-sev (ovmf_hash), its SEV metadata sections, hashes table GPA\n" +
			"and AP reset EIP, the SHA-256 of the kernel and initrd, and the command line; sha256sum.txt must\n" +
			"list bios-sev.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "file to write the document to (must not exist)"},
			platformFlag(),
			&cli.IntFlag{Name: "format-version", Value: 4, Usage: "document schema: 4 (current: plain cmdline, normalized flag) or 3 (0.6.0 release candidates: cmdline_sha384)"},
			&cli.BoolFlag{Name: "sha256sum-line", Usage: "also print the line to add to sha256sum.txt"},
			&cli.BoolFlag{Name: "kernel-header-normalized", DefaultText: "from metadata.json", Usage: "must agree with metadata.json kernel_header_normalized when given"},
			&cli.BoolFlag{Name: "no-verify-checksums", Usage: "do not fail when files differ from sha256sum.txt or digest.txt (DANGEROUS)"},
			&cli.BoolFlag{Name: "json", Usage: "print the document's fields and digest as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("image measurement takes one IMAGE (got %d arguments)", c.NArg())
			}
			platform, err := selectedPlatform(c)
			if err != nil {
				return err
			}
			out := c.String("out")
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("--out %s exists: remove it or choose another name", out)
			}
			if platform == platformSEVSNP {
				return imageMeasurementSNP(c, out, log)
			}
			v := c.Int("format-version")
			if v != 3 && v != 4 {
				return fmt.Errorf("--format-version %d: want 3 or 4", v)
			}
			// Only the measurement's inputs: the document reports no file digests.
			img, err := openMeasuredImage(c, c.Args().First(), log)
			if err != nil {
				return err
			}
			im, err := mr.Prepare(mr.InputsFromImage(img))
			if err != nil {
				return err
			}
			doc, err := verify.LiteFromImage(im, uint32(v))
			if err != nil {
				return err
			}
			enc, err := verify.EncodeLite(doc)
			if err != nil {
				return err
			}
			if err := writeFileAtomic(out, enc); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			sum := sha256.Sum256(enc)
			res := liteDocResult{SchemaVersion: jsonSchemaVersion, Path: out, Size: len(enc), SHA256: hex.EncodeToString(sum[:]), Document: doc, ToolVersion: toolVersion(),
				SHA256SumLine: fmt.Sprintf("%s  %s", hex.EncodeToString(sum[:]), verify.LiteFileName)}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%d bytes, version %d, sha256 %s)\n", out, len(enc), v, res.SHA256)
			if c.Bool("sha256sum-line") {
				fmt.Fprintln(c.App.Writer, res.SHA256SumLine)
			}
			return nil
		},
	}
}

type liteDocResult struct {
	SchemaVersion int                     `json:"schema_version"`
	Path          string                  `json:"path"`
	Size          int                     `json:"size"`
	SHA256        string                  `json:"sha256"`
	SHA256SumLine string                  `json:"sha256sum_line"`
	Document      *verify.LiteMeasurement `json:"document"`
	ToolVersion   string                  `json:"tool_version"`
}

func printInspection(w io.Writer, r *images.Inspection) {
	fmt.Fprintf(w, "image:    %s\n", r.Source)
	if r.Version != "" {
		fmt.Fprintf(w, "version:  %s\n", r.Version)
	}
	if r.OSImageHash != "" {
		fmt.Fprintf(w, "os_image_hash: %s\n", r.OSImageHash)
	}
	fmt.Fprintf(w, "checksums: %s\n", r.Checksums.Status)
	for _, p := range r.Checksums.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	fmt.Fprintln(w, "files:")
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %-32s %-9s %12d %s\n", f.Name, f.Role, f.Size, f.SHA256)
	}
	fmt.Fprintf(w, "cmdline:  %s\n", r.Cmdline)
	if r.Pins.RootfsHash != "" {
		fmt.Fprintf(w, "  pins dstack.rootfs_hash=%s\n", r.Pins.RootfsHash)
	}
	if r.Pins.RootfsSize != nil {
		fmt.Fprintf(w, "  pins dstack.rootfs_size=%d\n", *r.Pins.RootfsSize)
	}
	if ir := r.Initramfs; ir != nil {
		fmt.Fprintf(w, "initramfs: %s, %d entries, %d bytes of files\n", ir.Compression, ir.Count, ir.TotalBytes)
		if len(ir.Entries) == 0 && ir.Count > 0 {
			fmt.Fprintln(w, "  (members not listed: --members)")
		}
		for _, e := range ir.Entries {
			fmt.Fprintf(w, "  %-7s %s %10d %s\n", e.Type, e.Mode, e.Size, e.Name)
		}
		if ir.Error != "" {
			fmt.Fprintf(w, "  listing stopped: %s\n", ir.Error)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// kernelHeader says whether the shipped kernel already carries the canonical setup header:
// the bytes QEMU up to 10.1 writes for this command line and initrd on a VM with at least
// 0xB0000000 bytes of RAM, which is what a normalized image ships (dstack PR #1229).
type kernelHeader struct {
	Canonical          bool   `json:"canonical"`
	DeclaredNormalized bool   `json:"declared_normalized"`
	Note               string `json:"note,omitempty"`
}

func kernelHeaderReport(img *images.Image) kernelHeader {
	h := kernelHeader{DeclaredNormalized: img.Metadata.KernelHeaderNormalized}
	var initrdSize uint64
	if img.Initrd != nil {
		initrdSize = img.Initrd.Size
	}
	p := mr.CanonicalHeaderParams(img.Cmdline, img.Initrd != nil, initrdSize)
	patched, err := pe.PatchSetupHeader(img.Kernel, p)
	if err != nil {
		h.Note = "the setup header cannot be patched: " + err.Error()
		return h
	}
	h.Canonical = bytes.Equal(patched, img.Kernel)
	switch {
	case h.DeclaredNormalized && !h.Canonical:
		h.Note = "metadata.json declares kernel_header_normalized but the shipped header is not the canonical one"
	case !h.DeclaredNormalized && h.Canonical:
		h.Note = "the shipped header is canonical but metadata.json does not declare kernel_header_normalized"
	}
	return h
}
