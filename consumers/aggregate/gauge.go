package aggregate

import (
	"math"
	"sync/atomic"
)

type atomicGauge struct{ bits atomic.Uint64 }

func (g *atomicGauge) set(v float64) { g.bits.Store(math.Float64bits(v)) }
func (g *atomicGauge) get() float64  { return math.Float64frombits(g.bits.Load()) }
