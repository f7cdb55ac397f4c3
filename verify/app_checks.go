package verify

import (
	"bytes"

	"github.com/dstack-mr/dstack-mr/quote"
)

// checkMRConfigID checks a v1 MRCONFIGID (0x01 || compose hash) against RTMR3's compose hash.
// dstack's v2 form is a Keccak-256 this package does not compute.
func checkMRConfigID(r *Report, q *quote.Quote) {
	id := q.Report.MRConfigID
	switch {
	case bytes.Equal(id, make([]byte, len(id))):
	case id[0] == 1:
		want := make([]byte, 47)
		copy(want, r.App.ComposeHash)
		r.check("mr-config-id", r.App.ComposeHash != nil && bytes.Equal(id[1:], want), "MRCONFIGID %x, compose-hash %x", []byte(id), []byte(r.App.ComposeHash))
	default:
		r.skip("mr-config-id", false, "MRCONFIGID version %d (%x) is not checked", id[0], []byte(id))
	}
}
