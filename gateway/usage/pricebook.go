package usage

import (
	"fmt"
	"sort"
	"strings"

	"github.com/caracal-gw/caracal/internal/control"
)

// Pricebook finds the price of a (resource, model) pair. It is immutable
// once built, so gateways share one and swap it whole on change.
type Pricebook struct {
	byResource map[string]*resourcePrices
}

type resourcePrices struct {
	exact map[string]control.Price
	// prefixes are the "prefix*" entries, longest prefix first; the "*"
	// entry is the last, with an empty prefix.
	prefixes []prefixPrice
}

type prefixPrice struct {
	prefix string
	price  control.Price
}

// NewPricebook builds a Pricebook. A model ending in '*' matches every
// model with that prefix ("*" alone matches any). Duplicate (resource,
// model) pairs and negative prices are errors.
func NewPricebook(prices []control.Price) (*Pricebook, error) {
	pb := &Pricebook{byResource: make(map[string]*resourcePrices)}
	for _, p := range prices {
		if err := pb.add(p); err != nil {
			return nil, fmt.Errorf("cannot build pricebook: %w", err)
		}
	}
	for _, rp := range pb.byResource {
		sort.SliceStable(rp.prefixes, func(i, j int) bool {
			return len(rp.prefixes[i].prefix) > len(rp.prefixes[j].prefix)
		})
	}
	return pb, nil
}

func (pb *Pricebook) add(p control.Price) error {
	if p.InputPerMTok < 0 || p.OutputPerMTok < 0 || p.CacheWritePerMTok < 0 || p.CacheReadPerMTok < 0 || p.PerRequest < 0 {
		return fmt.Errorf("negative price for %s/%s", p.Resource, p.Model)
	}
	rp := pb.byResource[p.Resource]
	if rp == nil {
		rp = &resourcePrices{exact: make(map[string]control.Price)}
		pb.byResource[p.Resource] = rp
	}
	prefix, ok := strings.CutSuffix(p.Model, "*")
	if !ok {
		if _, dup := rp.exact[p.Model]; dup {
			return fmt.Errorf("duplicate price for %s/%s", p.Resource, p.Model)
		}
		rp.exact[p.Model] = p
		return nil
	}
	for _, e := range rp.prefixes {
		if e.prefix == prefix {
			return fmt.Errorf("duplicate price for %s/%s", p.Resource, p.Model)
		}
	}
	rp.prefixes = append(rp.prefixes, prefixPrice{prefix: prefix, price: p})
	return nil
}

// Lookup returns the price of model at resource: the exact entry, else the
// longest matching "prefix*" entry, else the resource's "*" entry. It does
// not allocate.
func (pb *Pricebook) Lookup(resource, model []byte) (control.Price, bool) {
	rp := pb.byResource[string(resource)]
	if rp == nil {
		return control.Price{}, false
	}
	if p, ok := rp.exact[string(model)]; ok {
		return p, true
	}
	for i := range rp.prefixes {
		e := &rp.prefixes[i]
		if len(model) >= len(e.prefix) && string(model[:len(e.prefix)]) == e.prefix {
			return e.price, true
		}
	}
	return control.Price{}, false
}

// Len returns the number of entries.
func (pb *Pricebook) Len() int {
	n := 0
	for _, rp := range pb.byResource {
		n += len(rp.exact) + len(rp.prefixes)
	}
	return n
}
