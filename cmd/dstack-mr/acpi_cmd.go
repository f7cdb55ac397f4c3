package main

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/acpi"
)

type acpiResult struct {
	SchemaVersion int               `json:"schema_version"`
	TablesSHA384  string            `json:"tables_sha384"`
	RSDPSHA384    string            `json:"rsdp_sha384"`
	LoaderSHA384  string            `json:"loader_sha384"`
	Tables        []acpi.TableEntry `json:"tables"`
	// Warnings name what the value rests on beyond proof (acpi.MachineConfig.Warnings); never null.
	Warnings    []string `json:"warnings"`
	ToolVersion string   `json:"tool_version"`
}

func acpiCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:  "acpi",
		Usage: "build the ACPI blobs QEMU hands the firmware (etc/acpi/tables, etc/acpi/rsdp, etc/table-loader)",
		Description: "Synthesizes, byte for byte, the three fw_cfg ACPI blobs QEMU generates for the VM shape,\n" +
			"whose SHA-384 digests RTMR0 records. --out writes tables.bin, rsdp.bin and loader.bin.",
		Flags: append(acpiMachineFlags(),
			&cli.StringFlag{Name: "out", Usage: "new or empty directory to write tables.bin, rsdp.bin, loader.bin into (never overwritten)"},
			&cli.BoolFlag{Name: "json", Usage: "print digests and the table list as JSON"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("acpi takes no arguments (got %q)", c.Args().First())
			}
			shapes, err := machineShapes(c)
			if err != nil {
				return err
			}
			if len(shapes) != 1 {
				return fmt.Errorf("acpi builds one VM shape at a time; give a single --cpu and --memory")
			}
			blobs, err := acpi.Build(shapes[0].Config)
			if err != nil {
				return inFlagTerms(fmt.Errorf("building ACPI tables: %w", err))
			}
			if dir := c.String("out"); dir != "" {
				if err := checkNewOrEmptyDir(dir); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if err := writeBlobs(dir, blobs); err != nil {
					return err
				}
				log.Infof("wrote tables.bin, rsdp.bin, loader.bin to %s", dir)
			}
			res := acpiResult{
				TablesSHA384:  sha384Hex(blobs.Tables),
				RSDPSHA384:    sha384Hex(blobs.RSDP),
				LoaderSHA384:  sha384Hex(blobs.Loader),
				Tables:        blobs.List,
				Warnings:      warnOnce(log, [][]string{shapes[0].Config.Warnings()}),
				ToolVersion:   toolVersion(),
				SchemaVersion: jsonSchemaVersion,
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintf(c.App.Writer, "tables  %s\nrsdp    %s\nloader  %s\n", res.TablesSHA384, res.RSDPSHA384, res.LoaderSHA384)
			for _, t := range res.Tables {
				fmt.Fprintf(c.App.Writer, "  %s offset %6d length %6d\n", t.Signature, t.Offset, t.Length)
			}
			return nil
		},
	}
}

// writeBlobs writes all three files or none: each goes to a temporary name first.
func writeBlobs(dir string, b *acpi.Blobs) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{{"tables.bin", b.Tables}, {"rsdp.bin", b.RSDP}, {"loader.bin", b.Loader}}
	var tmps []string
	cleanup := func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	for _, f := range files {
		tmp, err := writeTemp(dir, f.name, f.data)
		if err != nil {
			cleanup()
			return fmt.Errorf("--out: writing %s: %w", f.name, err)
		}
		tmps = append(tmps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], filepath.Join(dir, f.name)); err != nil {
			cleanup()
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}

func sha384Hex(b []byte) string {
	h := sha512.Sum384(b)
	return hex.EncodeToString(h[:])
}

func printJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// warnOnce logs each distinct warning of a run once on stderr and returns the union, in order
// of first appearance, never nil (the JSON key is always a list).
func warnOnce(log *logrus.Logger, lists [][]string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, l := range lists {
		for _, w := range l {
			if !seen[w] {
				seen[w] = true
				out = append(out, w)
				log.Warn(w)
			}
		}
	}
	return out
}

// acpiMachineFlags are the VM shape flags that reach the ACPI tables: not the kernel and MRTD
// behaviour flags, which the tables do not depend on.
func acpiMachineFlags() []cli.Flag {
	var out []cli.Flag
	for _, f := range machineFlags() {
		switch f.Names()[0] {
		case "two-pass-add-pages", "no-kernel-patch", "qemu-build":
			continue
		case "cpu":
			f = &cli.StringFlag{Name: "cpu", Aliases: []string{"c"}, Value: "1", Category: machineCategory, Usage: "vCPU count (one shape: acpi builds one machine)"}
		case "memory":
			f = &cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Value: "2G", Category: machineCategory, Usage: "guest memory: bytes or K/M/G/T (binary)"}
		}
		out = append(out, f)
	}
	return out
}

// checkNewOrEmptyDir accepts a path that does not exist yet or is an empty directory, as
// --extract does: output never lands over earlier files.
func checkNewOrEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: give a new or empty directory", dir)
	}
	return nil
}
