package viz

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"

	"github.com/buildledger/buildledger/ledger/orb"
)

// MaxPackages bounds the packages of a dependency graph (opam switches
// of unikernels have a few hundred); MaxEdges the edges GraphSVG draws
// (beyond it, only each package's edge from the first package that
// reaches it).
const (
	MaxPackages = 5000
	MaxEdges    = 10000
)

// Graph is the dependency graph of a build's installed opam packages.
type Graph struct {
	Root     string    `json:"root"`
	Packages []Package `json:"packages"` // by level, then name
}

// Package is a node of the graph.
type Package struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Level   int      `json:"level"`   // hops from the root; -1: not reached from it
	Depends []string `json:"depends"` // installed packages it depends on
	UsedBy  int      `json:"used_by"` // installed packages depending on it
}

// Dependencies builds the graph of a switch export: every installed
// package, with the installed packages its opam file's depends and
// depopts name (with --full every installed package carries its opam
// file), levelled by hops from root. root "" picks the switch's first
// root that is not part of the compiler.
func Dependencies(sw *orb.Switch, root string) (*Graph, error) {
	if len(sw.Installed) > MaxPackages {
		return nil, fmt.Errorf("%d installed packages, more than the %d drawn", len(sw.Installed), MaxPackages)
	}
	installed := map[string]*Package{}
	for _, p := range sw.Installed {
		installed[p.Name] = &Package{Name: p.Name, Version: p.Version, Level: -1}
	}
	if root == "" {
		compiler := map[string]bool{}
		for _, c := range sw.Compiler {
			compiler[c.Name] = true
		}
		for _, r := range sw.Roots {
			if !compiler[r.Name] && installed[r.Name] != nil {
				root = r.Name
				break
			}
		}
	}
	if installed[root] == nil {
		return nil, fmt.Errorf("the root package %q is not installed in the switch", root)
	}
	for _, p := range installed {
		o, ok := sw.Overlay(p.Name)
		if !ok {
			continue
		}
		seen := map[string]bool{}
		for _, f := range []string{"depends", "depopts"} {
			v, ok := o.Field(f)
			if !ok {
				continue
			}
			for _, d := range packageNames(v) {
				if installed[d] != nil && d != p.Name && !seen[d] {
					seen[d] = true
					p.Depends = append(p.Depends, d)
					installed[d].UsedBy++
				}
			}
		}
		slices.Sort(p.Depends)
	}
	// Breadth first from the root.
	installed[root].Level = 0
	queue := []string{root}
	for len(queue) > 0 {
		p := installed[queue[0]]
		queue = queue[1:]
		for _, d := range p.Depends {
			if installed[d].Level < 0 {
				installed[d].Level = p.Level + 1
				queue = append(queue, d)
			}
		}
	}
	g := &Graph{Root: root}
	for _, p := range installed {
		g.Packages = append(g.Packages, *p)
	}
	slices.SortFunc(g.Packages, func(a, b Package) int {
		la, lb := a.Level, b.Level
		if la < 0 {
			la = math.MaxInt
		}
		if lb < 0 {
			lb = math.MaxInt
		}
		if la != lb {
			return la - lb
		}
		return strings.Compare(a.Name, b.Name)
	})
	return g, nil
}

// packageNames returns the package names of a depends formula: strings
// in package position, not the versions of their constraints.
func packageNames(v orb.Value) []string {
	switch v := v.(type) {
	case orb.String:
		return []string{string(v)}
	case orb.Option:
		return packageNames(v.Value)
	case orb.List:
		var out []string
		for _, x := range v {
			out = append(out, packageNames(x)...)
		}
		return out
	case orb.Group:
		var out []string
		for _, x := range v {
			out = append(out, packageNames(x)...)
		}
		return out
	case orb.Logop:
		return append(packageNames(v.Left), packageNames(v.Right)...)
	}
	return nil
}

// GraphSVG draws the graph size × size: the root in the centre, each
// further level on a ring around it, an edge from each package to each of
// its dependencies, each package lighter the more packages use it (its
// tooltip says how many). Packages the root does not reach are left out
// and counted in the title.
func GraphSVG(g *Graph, size int) string {
	levels := map[int][]Package{}
	depth, unreached := 0, 0
	for _, p := range g.Packages {
		if p.Level < 0 {
			unreached++
			continue
		}
		levels[p.Level] = append(levels[p.Level], p)
		depth = max(depth, p.Level)
	}
	maxUsed := 1
	for _, p := range g.Packages {
		maxUsed = max(maxUsed, p.UsedBy)
	}
	level := make(map[string]int, len(g.Packages))
	for _, p := range g.Packages {
		level[p.Name] = p.Level
	}
	parentOf := map[string]map[string]bool{}
	for _, p := range g.Packages {
		for _, d := range p.Depends {
			if dl, ok := level[d]; ok && p.Level >= 0 && dl == p.Level+1 && parentOf[d] == nil {
				parentOf[d] = map[string]bool{p.Name: true}
			}
		}
	}
	c := float64(size) / 2
	ring := (c - 40) / math.Max(1, float64(depth))
	pos := map[string][2]float64{}
	for l := 0; l <= depth; l++ {
		ps := levels[l]
		for i, p := range ps {
			a := 2*math.Pi*float64(i)/float64(len(ps)) + float64(l)*0.35
			r := ring * float64(l)
			pos[p.Name] = [2]float64{c + r*math.Cos(a), c + r*math.Sin(a)}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="depgraph" viewBox="0 0 %d %d" role="img" aria-labelledby="depgraph-title"><title id="depgraph-title">Dependencies of %s: %d packages in %d levels`,
		size, size, html.EscapeString(g.Root), len(g.Packages)-unreached, depth+1)
	if unreached > 0 {
		fmt.Fprintf(&b, ` (%d installed packages it does not depend on are not drawn)`, unreached)
	}
	edges := 0
	for _, p := range g.Packages {
		if _, ok := pos[p.Name]; ok {
			edges += len(p.Depends)
		}
	}
	treeOnly := edges > MaxEdges
	if treeOnly {
		fmt.Fprintf(&b, `; of its %d dependency edges only those from each package to the first that reaches it are drawn`, edges)
	}
	b.WriteString(`</title><g class="edges" stroke="#999" stroke-opacity="0.35">`)
	for _, p := range g.Packages {
		from, ok := pos[p.Name]
		if !ok {
			continue
		}
		for _, d := range p.Depends {
			to, ok := pos[d]
			if !ok || treeOnly && !parentOf[d][p.Name] {
				continue
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, from[0], from[1], to[0], to[1])
		}
	}
	b.WriteString(`</g>`)
	for l := depth; l >= 0; l-- {
		for _, p := range levels[l] {
			xy := pos[p.Name]
			light := 35 + 50*float64(p.UsedBy)/float64(maxUsed)
			r := 5.0
			if l == 0 {
				r = 10
			}
			fmt.Fprintf(&b, `<g class="package" data-package="%s" data-level="%d"><circle cx="%.1f" cy="%.1f" r="%.0f" fill="hsl(210,60%%,%.0f%%)" stroke="#234"><title>%s.%s: level %d, %d dependencies, used by %d</title></circle>`,
				html.EscapeString(p.Name), l, xy[0], xy[1], r, light, html.EscapeString(p.Name), html.EscapeString(p.Version), l, len(p.Depends), p.UsedBy)
			if l <= 1 || len(levels[l]) <= 40 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="middle" fill="#111">%s</text>`, xy[0], xy[1]-r-2, map[bool]int{true: 13, false: 10}[l == 0], html.EscapeString(p.Name))
			}
			b.WriteString(`</g>`)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}
