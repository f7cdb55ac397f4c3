package main

import (
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/uefi"
)

func firmwareCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:  "firmware",
		Usage: "examine an OVMF/TDVF firmware image",
		Subcommands: []*cli.Command{{
			Name:      "inspect",
			Usage:     "list firmware volumes, files, the boot-manager load option (Boot0000) and variables",
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
				rep, err := uefi.Inspect(data)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, rep)
				}
				printFirmwareReport(c.App.Writer, path, rep)
				return nil
			},
		}},
	}
}

func printFirmwareReport(w interface{ Write([]byte) (int, error) }, path string, rep *uefi.FirmwareReport) {
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
}
