package viz

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// Point is one build in a chart: when it started, its value, and a label
// and link for its tooltip.
type Point struct {
	Time  time.Time
	Value float64
	Label string
	Href  string
}

// ChartSVG draws points (oldest first) as a small line chart width ×
// height titled title, with the value axis from 0 to the largest value
// (format writes a value for people) and a marked, linked dot per point.
func ChartSVG(title string, points []Point, format func(float64) string, width, height int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" role="group" aria-label="%s"><title>%s</title>`,
		width, height, html.EscapeString(title), html.EscapeString(title))
	if len(points) == 0 {
		b.WriteString(`</svg>`)
		return b.String()
	}
	var hi float64
	for _, p := range points {
		hi = max(hi, p.Value)
	}
	if hi == 0 {
		hi = 1
	}
	const left, right, top, bottom = 70.0, 10.0, 10.0, 24.0
	w, h := float64(width)-left-right, float64(height)-top-bottom
	x := func(i int) float64 {
		if len(points) == 1 {
			return left + w/2
		}
		return left + w*float64(i)/float64(len(points)-1)
	}
	y := func(v float64) float64 { return top + h*(1-v/hi) }
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`, left, top+h, left+w, top+h)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`, left, top, left, top+h)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end" fill="#333">%s</text>`, left-4, top+9, html.EscapeString(format(hi)))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end" fill="#333">0</text>`, left-4, top+h)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#333">%s</text>`, left, height-6, points[0].Time.UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="end" fill="#333">%s</text>`, left+w, height-6, points[len(points)-1].Time.UTC().Format("2006-01-02"))
	var line []string
	for i, p := range points {
		line = append(line, fmt.Sprintf("%.1f,%.1f", x(i), y(p.Value)))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#36c" stroke-width="1.5" points="%s"/>`, strings.Join(line, " "))
	for i, p := range points {
		fmt.Fprintf(&b, `<a href="%s"><circle class="point" cx="%.1f" cy="%.1f" r="3.5" fill="#36c"><title>%s: %s</title></circle></a>`,
			html.EscapeString(p.Href), x(i), y(p.Value), html.EscapeString(p.Label), html.EscapeString(format(p.Value)))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// Bytes writes a size for people (1.5 MiB).
func Bytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// Seconds writes a duration in seconds for people (2m30s).
func Seconds(v float64) string { return (time.Duration(v) * time.Second).String() }
