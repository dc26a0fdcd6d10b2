package viz

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Rect is a rectangle in SVG user units.
type Rect struct{ X, Y, W, H float64 }

// Squarify lays out values (positive, largest first) in r as a squarified
// treemap: each value's rectangle has an area proportional to it and an
// aspect ratio kept close to 1. The result is in the order of values.
func Squarify(values []float64, r Rect) []Rect {
	var total float64
	for _, v := range values {
		total += v
	}
	out := make([]Rect, 0, len(values))
	if total <= 0 || r.W <= 0 || r.H <= 0 {
		for range values {
			out = append(out, Rect{X: r.X, Y: r.Y})
		}
		return out
	}
	scale := r.W * r.H / total
	areas := make([]float64, len(values))
	for i, v := range values {
		areas[i] = v * scale
	}
	for len(areas) > 0 {
		short := math.Min(r.W, r.H)
		n := 1
		for n < len(areas) && worst(areas[:n+1], short) <= worst(areas[:n], short) {
			n++
		}
		var rects []Rect
		rects, r = layoutRow(areas[:n], r)
		out = append(out, rects...)
		areas = areas[n:]
	}
	return out
}

// worst is the largest aspect ratio of a row of areas along a side of
// length w.
func worst(row []float64, w float64) float64 {
	var s, hi, lo float64
	lo = math.Inf(1)
	for _, a := range row {
		s += a
		hi, lo = math.Max(hi, a), math.Min(lo, a)
	}
	if s == 0 || lo == 0 {
		return math.Inf(1)
	}
	return math.Max(w*w*hi/(s*s), s*s/(w*w*lo))
}

// layoutRow places a row along the shorter side of r and returns the
// rectangles and what is left of r.
func layoutRow(row []float64, r Rect) ([]Rect, Rect) {
	var s float64
	for _, a := range row {
		s += a
	}
	out := make([]Rect, 0, len(row))
	if r.W >= r.H { // a column on the left
		w := s / r.H
		y := r.Y
		for _, a := range row {
			h := a / w
			out = append(out, Rect{r.X, y, w, h})
			y += h
		}
		return out, Rect{r.X + w, r.Y, r.W - w, r.H}
	}
	h := s / r.W // a row on top
	x := r.X
	for _, a := range row {
		w := a / h
		out = append(out, Rect{x, r.Y, w, h})
		x += w
	}
	return out, Rect{r.X, r.Y + h, r.W, r.H - h}
}

// TreemapSVG draws a composition as an SVG treemap width × height: a
// rectangle per library (coloured by library) holding a rectangle per
// unit, and one for the unattributed bytes; each has a tooltip with its
// name, size and share of the file, and a label where it fits. The
// document has role "img" and a title stating what it shows.
func TreemapSVG(c *Composition, width, height int) string {
	c = limitComposition(c, maxLibraries, maxUnits)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="treemap" viewBox="0 0 %d %d" role="img" aria-labelledby="treemap-title"><title id="treemap-title">Composition of the binary: %d bytes, %s attributed to %d libraries by its symbols</title>`,
		width, height, c.FileSize, percent(c.Attributed, c.FileSize), len(c.Libraries))
	values := make([]float64, 0, len(c.Libraries)+1)
	for _, l := range c.Libraries {
		values = append(values, float64(l.Size))
	}
	un := c.Unattributed()
	if un > 0 {
		values = append(values, float64(un))
	}
	rects := Squarify(values, Rect{0, 0, float64(width), float64(height)})
	for i, l := range c.Libraries {
		r := rects[i]
		hue := (i * 137) % 360 // golden-angle steps: neighbours differ
		fmt.Fprintf(&b, `<g class="library" data-library="%s">`, html.EscapeString(l.Name))
		rect(&b, r, fmt.Sprintf("hsl(%d,55%%,80%%)", hue), fmt.Sprintf("%s: %d bytes (%s)", l.Name, l.Size, percent(l.Size, c.FileSize)), "lib")
		inner := Rect{r.X + 2, r.Y + 16, r.W - 4, r.H - 18}
		if inner.W > 8 && inner.H > 8 {
			uv := make([]float64, len(l.Units))
			for j, u := range l.Units {
				uv[j] = float64(u.Size)
			}
			for j, ur := range Squarify(uv, inner) {
				u := l.Units[j]
				rect(&b, ur, fmt.Sprintf("hsl(%d,45%%,%d%%)", hue, 62+(j%4)*6), fmt.Sprintf("%s: %d bytes (%s)", u.Name, u.Size, percent(u.Size, c.FileSize)), "unit")
				label(&b, ur, u.Name, 11)
			}
		}
		label(&b, Rect{r.X, r.Y, r.W, 16}, l.Name, 12)
		b.WriteString(`</g>`)
	}
	if un > 0 {
		r := rects[len(rects)-1]
		rect(&b, r, "#eee", fmt.Sprintf("not attributed to any symbol: %d bytes (%s)", un, percent(un, c.FileSize)), "unattributed")
		label(&b, r, "not attributed", 12)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func rect(b *strings.Builder, r Rect, fill, title, class string) {
	fmt.Fprintf(b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="#fff"><title>%s</title></rect>`,
		class, r.X, r.Y, math.Max(r.W, 0), math.Max(r.H, 0), fill, html.EscapeString(title))
}

// label writes text in the top left of r if it fits (about 0.6 em per
// character).
func label(b *strings.Builder, r Rect, text string, size float64) {
	if r.H < size+2 || r.W < size*0.6*float64(len(text))+4 {
		return
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="%.0f" fill="#111">%s</text>`, r.X+2, r.Y+size, size, html.EscapeString(text))
}

func percent(part, whole int64) string {
	if whole <= 0 {
		return "0%"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

// The treemap draws at most maxLibraries libraries of at most maxUnits
// units each; the smaller ones are drawn together as one box ("N more"),
// which keeps the drawing readable and its size bounded.
const (
	maxLibraries = 30
	maxUnits     = 15
)

// limitComposition returns c with at most libs libraries of at most units
// units, the rest of each level merged into one; sizes and order are kept.
func limitComposition(c *Composition, libs, units int) *Composition {
	out := *c
	out.Libraries = nil
	for i, l := range c.Libraries {
		if i == libs-1 && len(c.Libraries) > libs {
			rest := Library{Name: fmt.Sprintf("%d more libraries", len(c.Libraries)-i)}
			for _, o := range c.Libraries[i:] {
				rest.Size += o.Size
			}
			rest.Units = []Unit{{Name: rest.Name, Size: rest.Size}}
			out.Libraries = append(out.Libraries, rest)
			break
		}
		if len(l.Units) > units {
			kept := append([]Unit(nil), l.Units[:units-1]...)
			more := Unit{Name: fmt.Sprintf("%d more units", len(l.Units)-units+1)}
			for _, u := range l.Units[units-1:] {
				more.Size += u.Size
			}
			l.Units = append(kept, more)
		}
		out.Libraries = append(out.Libraries, l)
	}
	return &out
}
