package main

import "testing"

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{in: "2G", want: 2 << 30},
		{in: "2816M", want: 2816 << 20},
		{in: "512MiB", want: 512 << 20},
		{in: "1t", want: 1 << 40},
		{in: "4096", want: 4096},
		{in: "0x20000000000", want: 0x20000000000},
		{in: "64K", want: 64 << 10},
		{in: "3GB", want: 3 << 30},
		{in: "", bad: true},
		{in: "G", bad: true},
		{in: "-1G", bad: true},
		{in: "1.5G", bad: true},
		{in: "99999999999999T", bad: true},
		{in: "0xZZ", bad: true},
	} {
		got, err := parseSize(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[uint64]string{2 << 30: "2G", 2816 << 20: "2816M", 1000: "1000", 1 << 40: "1T"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q want %q", in, got, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"2G", "0x10", "512MiB", "1T", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseSize(s)
		if err == nil && s != "" && v > 0 {
			if back, err := parseSize(formatSize(v)); err != nil || back != v {
				t.Fatalf("round trip %q -> %d -> %q -> %d, %v", s, v, formatSize(v), back, err)
			}
		}
	})
}
