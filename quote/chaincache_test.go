package quote

import (
	"reflect"
	"testing"
	"time"
)

// TestChainCacheAgreesWithFullPath: for every real quote, at times inside and outside its
// chain's validity, a verification that reuses the cached chain equals one that parses and
// checks the chain afresh, check for check.
func TestChainCacheAgreesWithFullPath(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
		time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	n := 0
	for name, raw := range realQuotes(t) {
		q, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range times {
			clear(pckChains.m)
			fresh, err1 := Verify(q, VerifyOptions{Time: at})
			for _, warmAt := range times { // warm the entry at other times first
				_, _ = Verify(q, VerifyOptions{Time: warmAt})
			}
			cached, err2 := Verify(q, VerifyOptions{Time: at})
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("%s at %s: errors %v / %v", name, at, err1, err2)
			}
			if !reflect.DeepEqual(fresh, cached) {
				t.Errorf("%s at %s: cached verification differs:\n%+v\n%+v", name, at, fresh.Checks, cached.Checks)
			}
			n++
		}
	}
	t.Logf("%d verifications agree", n)
}
