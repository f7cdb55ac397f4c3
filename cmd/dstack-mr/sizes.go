package main

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// parseSize reads a byte count: plain decimal or 0x-hex bytes, or a number with a binary
// suffix K, M, G or T (optionally followed by "i", "iB" or "B"): "2G", "2816M", "512MiB".
func parseSize(s string) (uint64, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("size %q: empty", orig)
	}
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		v, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q: bad hex number", orig)
		}
		return v, nil
	}
	upper := strings.ToUpper(s)
	for _, suffix := range []string{"IB", "I", "B"} {
		if strings.HasSuffix(upper, suffix) && len(upper) > len(suffix) {
			trimmed := upper[:len(upper)-len(suffix)]
			if last := trimmed[len(trimmed)-1]; strings.IndexByte("KMGT", last) >= 0 || suffix == "B" {
				upper = trimmed
				break
			}
		}
	}
	shift := 0
	switch upper[len(upper)-1] {
	case 'K':
		shift = 10
	case 'M':
		shift = 20
	case 'G':
		shift = 30
	case 'T':
		shift = 40
	}
	if shift > 0 {
		upper = upper[:len(upper)-1]
	}
	v, err := strconv.ParseUint(upper, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want bytes or a number with K/M/G/T suffix", orig)
	}
	if hi, _ := bits.Mul64(v, 1<<shift); hi != 0 || v > math.MaxUint64>>shift {
		return 0, fmt.Errorf("size %q: too large", orig)
	}
	return v << shift, nil
}

// formatSize prints a byte count with the largest binary suffix that divides it exactly.
func formatSize(v uint64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", v>>u.shift, u.suffix)
		}
	}
	return strconv.FormatUint(v, 10)
}

// splitList splits a comma-separated flag value: spaces around items are ignored, an empty
// item (a typo such as "1,,2") or a repeated one is an error naming the flag.
func splitList(flag, value string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("--%s %q: empty item in the list", flag, value)
		}
		if seen[item] {
			return nil, fmt.Errorf("--%s %q: %s is listed twice", flag, value, item)
		}
		seen[item] = true
		out = append(out, item)
	}
	return out, nil
}
