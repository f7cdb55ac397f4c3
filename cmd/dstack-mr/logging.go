package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
)

// cliFormatter prints "dstack-mr: level: message key=value" lines: readable on a terminal,
// still one line per entry for scripts that capture stderr.
type cliFormatter struct{}

func (cliFormatter) Format(e *logrus.Entry) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "dstack-mr: %s: %s", e.Level, e.Message)
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, e.Data[k])
	}
	b.WriteByte('\n')
	return []byte(b.String()), nil
}

func newLogger() *logrus.Logger {
	log := logrus.New()
	log.SetFormatter(cliFormatter{})
	log.SetLevel(logrus.WarnLevel)
	return log
}
