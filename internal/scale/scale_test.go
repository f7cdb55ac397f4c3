package scale

import (
	"strings"
	"testing"
)

func TestCompact(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want uint64
		err  string
	}{
		{[]byte{0x00}, 0, ""},
		{[]byte{0xfc}, 63, ""},
		{[]byte{0x01, 0x01}, 64, ""},
		{[]byte{0xfd, 0xff}, 16383, ""},
		{[]byte{0x02, 0x00, 0x01, 0x00}, 16384, ""},
		{[]byte{0x03, 0xff, 0xff, 0xff, 0xff}, 1<<32 - 1, ""},
		{[]byte{0x07, 0x00, 0x00, 0x00, 0x00, 0x01}, 1 << 32, ""},
		{[]byte{0x17}, 0, "compact integer of 9 bytes"},
		{[]byte{0x01}, 0, "truncated at offset 1"},
		{nil, 0, "truncated at offset 0"},
	} {
		got, err := NewReader(tc.in, "x ").Compact("n")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "x n") {
				t.Errorf("%x: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%x: %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestBytesAndCount(t *testing.T) {
	r := NewReader([]byte{0x0c, 'a', 'b', 'c', 0x08, 0xff}, "")
	if b, err := r.Bytes("s"); err != nil || string(b) != "abc" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := r.Count("items"); err == nil || !strings.Contains(err.Error(), "beyond the input") {
		t.Errorf("count past the input: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{0x0c, 'a', 'b', 'c', 0x01, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b, "")
		for r.Remaining() > 0 {
			if _, err := r.Bytes("s"); err != nil {
				return
			}
		}
	})
}
