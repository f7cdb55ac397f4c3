package main

import (
	"fmt"
	"io"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/images"
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
				if c.Bool("json") {
					return printJSON(c.App.Writer, rep)
				}
				printInspection(c.App.Writer, rep)
				return nil
			},
		}},
	}
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
