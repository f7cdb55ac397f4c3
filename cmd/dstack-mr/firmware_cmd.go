package main

import (
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/uefi"
)

func firmwareCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:  "firmware",
		Usage: "examine an OVMF/TDVF firmware image",
		Subcommands: []*cli.Command{{
			Name:      "inspect",
			Usage:     "list firmware volumes, files, Boot0000, variables, the build traits that shape the measurement and the RTMR0 events derived from the image",
			ArgsUsage: "FIRMWARE",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"}},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return fmt.Errorf("firmware inspect takes one FIRMWARE file")
				}
				path := c.Args().First()
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				fw, err := uefi.Parse(data)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				full := firmwareReport{FirmwareReport: fw.Inspect(len(data)), Measurement: measurementSupport(data, fw), ToolVersion: toolVersion(), SchemaVersion: jsonSchemaVersion}
				if c.Bool("json") {
					return printJSON(c.App.Writer, full)
				}
				printFirmwareReport(c.App.Writer, path, full)
				return nil
			},
		}},
	}
}

// firmwareReport adds to the volume listing what the measurement makes of the image.
type firmwareReport struct {
	SchemaVersion int `json:"schema_version"`
	*uefi.FirmwareReport
	Measurement firmwareMeasurement `json:"measurement"`
	ToolVersion string              `json:"tool_version"`
}

// firmwareMeasurement says whether dstack-mr can compute this firmware's RTMRs and, when it
// can, the RTMR0 events that depend on the image alone.
type firmwareMeasurement struct {
	Supported bool       `json:"supported"`
	Error     string     `json:"error,omitempty"`
	Events    []mr.Event `json:"firmware_events,omitempty"`
}

// measurementSupport reuses the volumes parsed for the listing (decompressing the DXE volume
// is the slow part).
func measurementSupport(image []byte, parsed *uefi.Firmware) firmwareMeasurement {
	fw, err := mr.ParseFirmwareWith(image, mr.FirmwareOptions{
		Analyze: func([]byte) (*uefi.BootAnalysis, error) { return parsed.AnalyzeBoot() },
	})
	if err != nil {
		return firmwareMeasurement{Error: err.Error()}
	}
	ev, err := fw.FirmwareEvents()
	if err != nil {
		return firmwareMeasurement{Error: err.Error()}
	}
	return firmwareMeasurement{Supported: true, Events: ev}
}

func printFirmwareReport(w interface{ Write([]byte) (int, error) }, path string, full firmwareReport) {
	rep := full.FirmwareReport
	fmt.Fprintf(w, "%s: %d bytes, %d firmware volumes\n", path, rep.Size, len(rep.Volumes))
	for _, v := range rep.Volumes {
		indent := ""
		for i := 0; i < v.Depth; i++ {
			indent += "  "
		}
		name := "-"
		if v.Name != nil {
			name = v.Name.String()
		}
		fmt.Fprintf(w, "%sFV @0x%x size 0x%x name %s (%d files)\n", indent, v.Offset, v.Size, name, len(v.Files))
		for _, f := range v.Files {
			fmt.Fprintf(w, "%s  %s %-22s %8d %s\n", indent, f.GUID, f.TypeName, f.Size, f.UIName)
		}
	}
	if rep.BootManager != nil {
		b := rep.BootManager
		fmt.Fprintf(w, "Boot0000: %q Fv(%s)/FvFile(%s) attributes 0x%x (%d bytes)\n", b.Description, b.VolumeName, b.FileGUID, b.Attributes, len(b.Data))
	} else if rep.BootError != "" {
		fmt.Fprintf(w, "Boot0000: %s\n", rep.BootError)
	}
	fmt.Fprintf(w, "variables: %d\n", len(rep.Variables))
	for _, v := range rep.Variables {
		fmt.Fprintf(w, "  %s %s attributes 0x%x, %d bytes\n", v.VendorGUID, v.Name, v.Attributes, v.DataSize)
	}
	for _, u := range rep.Unsupported {
		fmt.Fprintf(w, "not decoded: %s\n", u)
	}
	if t := rep.Traits; t != nil {
		fmt.Fprintf(w, "measurement traits: CC measurement %t, Secure Boot capable %t, SMM required %t, kernel load options %s\n",
			t.CCMeasurement, t.SecureBootCapable, t.SMMRequired, t.LoadOptionsForm)
		for _, e := range t.Evidence {
			fmt.Fprintf(w, "  %s\n", e)
		}
	} else if rep.TraitsError != "" {
		fmt.Fprintf(w, "measurement traits: %s\n", rep.TraitsError)
	}
	m := full.Measurement
	if !m.Supported {
		fmt.Fprintf(w, "RTMR measurement: not supported: %s\n", m.Error)
		return
	}
	fmt.Fprintf(w, "RTMR measurement: supported; RTMR0 events from the image:\n")
	for _, e := range m.Events {
		fmt.Fprintf(w, "  %-11s %s  %s\n", e.Label, e.Digest, e.Detail)
	}
}
