package service

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dstack-mr/dstack-mr/quote"
)

// CollateralSet is Intel's collateral (dcap-qvl's QuoteCollateralV3 JSON) by FMSPC, read once
// from a directory; a quote's TCB status is evaluated with the collateral of its PCK
// certificate's FMSPC, checked as `quote verify --collateral` checks it.
type CollateralSet struct {
	byFMSPC map[string][]byte
	// NextUpdate is each FMSPC's TCB info nextUpdate: the collateral is refused after it.
	NextUpdate map[string]time.Time
}

// OpenCollateralDir reads every *.json file of dir as collateral, keyed by the FMSPC its TCB
// info names. Two files for one FMSPC, or a file that is not collateral, are errors naming it.
func OpenCollateralDir(dir string) (*CollateralSet, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--collateral-dir %s: %w", dir, err)
	}
	s := &CollateralSet{byFMSPC: map[string][]byte{}, NextUpdate: map[string]time.Time{}}
	from := map[string]string{}
	for _, de := range ents {
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, de.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--collateral-dir: %w", err)
		}
		c, err := quote.ParseCollateral(b)
		if err != nil {
			return nil, fmt.Errorf("--collateral-dir: %s: %w", p, err)
		}
		var ti struct {
			FMSPC      string    `json:"fmspc"`
			NextUpdate time.Time `json:"nextUpdate"`
		}
		if err := json.Unmarshal([]byte(c.TCBInfo), &ti); err != nil || ti.FMSPC == "" {
			return nil, fmt.Errorf("--collateral-dir: %s: tcb_info names no fmspc", p)
		}
		f := strings.ToUpper(ti.FMSPC)
		if prev, dup := from[f]; dup {
			return nil, fmt.Errorf("--collateral-dir: %s and %s are both for FMSPC %s: keep one", prev, p, f)
		}
		from[f] = p
		s.byFMSPC[f] = b
		s.NextUpdate[f] = ti.NextUpdate
	}
	return s, nil
}

// For is the collateral of fmspc, or nil.
func (s *CollateralSet) For(fmspc string) []byte {
	return s.byFMSPC[strings.ToUpper(fmspc)]
}

// FMSPCs lists the FMSPCs held.
func (s *CollateralSet) FMSPCs() []string {
	out := make([]string, 0, len(s.byFMSPC))
	for f := range s.byFMSPC {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
