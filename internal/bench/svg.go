package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// SVG layout, in pixels.
const (
	svgWidth   = 860
	panelH     = 300
	marginL    = 70
	marginR    = 150 // room for the legend
	marginT    = 50
	panelGap   = 90
	svgHeight  = marginT + 2*panelH + panelGap + 60
	plotRight  = svgWidth - marginR
	distBins   = 60
	fontFamily = "sans-serif"
)

// WriteSVG draws r as a standalone SVG image: latency over time (p50, p99
// and max per interval, log scale) above the latency distribution (share of
// operations per latency bin, log-scaled latency axis).
func WriteSVG(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	p := &svgPlot{w: bw}
	p.printf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="12">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight, fontFamily)
	p.printf(`<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", svgWidth, svgHeight)
	title := fmt.Sprintf("aspen bench: %s: %.0f ops/s, p50 %s ms, p99 %s ms, max %s ms",
		r.Name(), r.Throughput, fmtMs(r.Latency.P50), fmtMs(r.Latency.P99), fmtMs(r.Latency.Max))
	p.text(svgWidth/2, 24, "middle", 14, title)
	p.timeline(r, marginT)
	p.distribution(r, marginT+panelH+panelGap)
	p.printf("</svg>\n")
	if p.err != nil {
		return p.err
	}
	return bw.Flush()
}

// svgPlot writes SVG elements, keeping the first write error.
type svgPlot struct {
	w   io.Writer
	err error
}

func (p *svgPlot) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// text writes an escaped text element.
func (p *svgPlot) text(x, y float64, anchor string, size int, s string) {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	p.printf(`<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d">%s</text>`+"\n", x, y, anchor, size, b.String())
}

// scale maps values to pixels, linearly or logarithmically.
type scale struct {
	lo, hi   float64 // data range (both > 0 when log)
	px0, px1 float64
	log      bool
}

func (s scale) pos(v float64) float64 {
	lo, hi := s.lo, s.hi
	if s.log {
		v, lo, hi = math.Log10(max(v, s.lo)), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return (s.px0 + s.px1) / 2
	}
	return s.px0 + (v-lo)/(hi-lo)*(s.px1-s.px0)
}

// ticks returns round values in [lo, hi]: 1-2-5 steps, or 1-2-5 per decade
// on a log scale.
func (s scale) ticks() []float64 {
	var out []float64
	if s.log {
		for e := math.Floor(math.Log10(s.lo)); e <= math.Ceil(math.Log10(s.hi)); e++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, e)
				if v >= s.lo*0.999 && v <= s.hi*1.001 {
					out = append(out, v)
				}
			}
		}
		return out
	}
	span := s.hi - s.lo
	if span <= 0 {
		return []float64{s.lo}
	}
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 8 {
			step *= m
			break
		}
	}
	for v := math.Ceil(s.lo/step) * step; v <= s.hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

// fmtTick formats an axis value briefly.
func fmtTick(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// axes draws the frame, ticks, grid and labels of one panel.
func (p *svgPlot) axes(x, y scale, top float64, title, xlabel, ylabel string) {
	bottom := top + panelH
	p.printf(`<rect x="%d" y="%.1f" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", marginL, top, plotRight-marginL, panelH)
	p.text(marginL, top-10, "start", 13, title)
	for _, v := range x.ticks() {
		px := x.pos(v)
		p.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px, top, px, bottom)
		p.text(px, bottom+16, "middle", 11, fmtTick(v))
	}
	for _, v := range y.ticks() {
		py := y.pos(v)
		p.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", marginL, py, plotRight, py)
		p.text(marginL-6, py+4, "end", 11, fmtTick(v))
	}
	p.text((marginL+plotRight)/2, bottom+36, "middle", 12, xlabel)
	p.printf(`<text x="18" y="%.1f" text-anchor="middle" font-size="12" transform="rotate(-90 18 %.1f)">%s</text>`+"\n",
		top+panelH/2, top+panelH/2, ylabel)
}

// legend draws one colour key line of a panel.
func (p *svgPlot) legend(top float64, i int, color, label string) {
	y := top + 20 + float64(i)*20
	p.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", plotRight+14, y, plotRight+38, y, color)
	p.text(plotRight+44, y+4, "start", 12, label)
}

// timeline draws latency percentiles per interval.
func (p *svgPlot) timeline(r *Result, top float64) {
	lo, hi, end := math.Inf(1), 0.0, 0.0
	for _, pt := range r.Timeline {
		end = max(end, pt.At)
		if pt.Ops == 0 {
			continue
		}
		lo, hi = min(lo, pt.P50Ms), max(hi, pt.MaxMs)
	}
	if hi == 0 { // nothing recorded
		lo, hi = 0.1, 1
	}
	lo, hi = decadeFloor(max(lo, 1e-3)), decadeCeil(hi)
	x := scale{lo: 0, hi: max(end, 1e-3), px0: marginL, px1: plotRight}
	y := scale{lo: lo, hi: hi, px0: top + panelH, px1: top, log: true}
	p.axes(x, y, top, "Latency over time", "time since start (s)", "latency (ms, log scale)")
	series := []struct {
		color, label string
		value        func(Point) float64
	}{
		{"#1f77b4", "p50", func(pt Point) float64 { return pt.P50Ms }},
		{"#ff7f0e", "p99", func(pt Point) float64 { return pt.P99Ms }},
		{"#d62728", "max", func(pt Point) float64 { return pt.MaxMs }},
	}
	for i, s := range series {
		var pts []string
		for _, pt := range r.Timeline {
			if pt.Ops == 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x.pos(pt.At), y.pos(s.value(pt))))
		}
		if len(pts) > 0 {
			p.printf(`<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		}
		p.legend(top, i, s.color, s.label)
	}
}

// distribution draws the share of operations per log-spaced latency bin,
// with markers at p50, p99 and p99.9.
func (p *svgPlot) distribution(r *Result, top float64) {
	h := &r.hist
	lo, hi := 0.1, 1.0
	if h.Count() > 0 {
		lo, hi = decadeFloor(max(ms(h.Min()), 1e-3)), decadeCeil(max(ms(h.Max()), 1e-3))
	}
	if hi <= lo {
		hi = lo * 10
	}
	var bins [distBins]uint64
	logLo, logHi := math.Log10(lo), math.Log10(hi)
	h.bins(func(blo, bhi int64, c uint64) {
		mid := ms(time.Duration(blo+bhi) / 2)
		i := int((math.Log10(max(mid, lo)) - logLo) / (logHi - logLo) * distBins)
		bins[min(max(i, 0), distBins-1)] += c
	})
	var top1 float64
	for _, c := range bins {
		top1 = max(top1, float64(c)/float64(max(h.Count(), 1)))
	}
	x := scale{lo: lo, hi: hi, px0: marginL, px1: plotRight, log: true}
	y := scale{lo: 0, hi: max(top1*100*1.1, 1), px0: top + panelH, px1: top}
	p.axes(x, y, top, "Latency distribution", "latency (ms, log scale)", "share of operations (%)")
	bw := float64(plotRight-marginL) / distBins
	for i, c := range bins {
		if c == 0 {
			continue
		}
		share := 100 * float64(c) / float64(h.Count())
		py := y.pos(share)
		p.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1f77b4" fill-opacity="0.7"/>`+"\n",
			marginL+float64(i)*bw, py, bw-1, top+panelH-py)
	}
	marks := []struct {
		color, label string
		v            float64
	}{
		{"#2ca02c", "p50", r.Latency.P50},
		{"#ff7f0e", "p99", r.Latency.P99},
		{"#d62728", "p99.9", r.Latency.P999},
	}
	for i, m := range marks {
		if h.Count() > 0 {
			px := x.pos(m.v)
			p.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="5,3"/>`+"\n",
				px, top, px, top+panelH, m.color)
		}
		p.legend(top, i, m.color, fmt.Sprintf("%s %s ms", m.label, fmtMs(m.v)))
	}
}

func decadeFloor(v float64) float64 { return math.Pow(10, math.Floor(math.Log10(v))) }
func decadeCeil(v float64) float64  { return math.Pow(10, math.Ceil(math.Log10(v))) }
