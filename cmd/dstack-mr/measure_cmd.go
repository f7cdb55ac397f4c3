package main

import (
	"fmt"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

func measureCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:      "measure",
		Usage:     "compute MRTD and RTMR0-2 for an image and VM shape",
		ArgsUsage: "[IMAGE]",
		Flags:     machineFlags(),
		Action: func(c *cli.Context) error {
			return fmt.Errorf("measure: not supported yet")
		},
	}
}
