package main

import (
	"reflect"
	"testing"
)

func TestInterspersed(t *testing.T) {
	app := newApp(newLogger(), nil, nil)
	for _, tc := range []struct{ in, want []string }{
		{[]string{"x", "measure", "IMG", "--cpu", "8", "--json"}, []string{"x", "measure", "--cpu", "8", "--json", "--", "IMG"}},
		{[]string{"x", "--log-level", "info", "measure", "--json", "IMG"}, []string{"x", "--log-level", "info", "measure", "--json", "--", "IMG"}},
		{[]string{"x", "measure", "--memory=2G", "IMG", "--root-verity=false"}, []string{"x", "measure", "--memory=2G", "--root-verity=false", "--", "IMG"}},
		{[]string{"x", "image", "inspect", "IMG", "--json"}, []string{"x", "image", "inspect", "--json", "--", "IMG"}},
		{[]string{"x", "measure", "--", "-odd-name"}, []string{"x", "measure", "--", "-odd-name"}},
		{[]string{"x", "help"}, []string{"x", "help"}},
	} {
		if got := interspersed(app, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("interspersed(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
