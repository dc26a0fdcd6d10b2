package viz

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// MaxSymbols bounds how many symbols Composition reads: a symbol table
// is decoded into memory (about 100 bytes a symbol), and a binary's own
// size does not bound it safely. A MirageOS unikernel has tens of
// thousands; a large Go program a few hundred thousand.
const MaxSymbols = 500_000

// ErrTooManySymbols: the symbol table is larger than MaxSymbols.
var ErrTooManySymbols = errors.New("too many symbols to read")

// Composition is what a binary is made of, by the bytes its ELF symbol
// table attributes to each OCaml compilation unit and library (as
// modulectomy measures a MirageOS unikernel), or to each C or Go symbol
// group for other binaries.
type Composition struct {
	FileSize   int64     `json:"file_size"`  // the whole file
	Attributed int64     `json:"attributed"` // bytes of the file some symbol covers
	Libraries  []Library `json:"libraries"`  // by size, largest first
	Symbols    int       `json:"symbols"`    // sized symbols read
}

// Unattributed is the share of the file no symbol covers: headers,
// section tables, string and debug sections, padding.
func (c *Composition) Unattributed() int64 { return c.FileSize - c.Attributed }

// Library is a group of units: an OCaml library (the first component of
// its compilation units' names: Stdlib, Mirage_crypto, ...), "OCaml
// runtime" for caml_* symbols, a Go package path's first element, or "C
// and other" for the rest.
type Library struct {
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	Units []Unit `json:"units"` // by size, largest first
}

// Unit is a compilation unit (OCaml module, Go package) and its bytes.
type Unit struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// ErrNotELF: the file is not an ELF binary.
var ErrNotELF = errors.New("not an ELF binary")

// ELFComposition reads the symbol table of an ELF file of size bytes and
// attributes every byte a symbol of an allocated section covers: a
// symbol's size where the table gives one, otherwise up to the next
// symbol's address in its section (OCaml's data symbols carry no size).
// A stripped binary has no symbols: its whole size is unattributed.
func ELFComposition(r io.ReaderAt, size int64) (c *Composition, err error) {
	defer func() {
		// debug/elf has panicked on crafted files before; a file it cannot
		// read is not ELF to this package.
		if p := recover(); p != nil {
			c, err = nil, fmt.Errorf("%w: the file cannot be read as ELF (%v)", ErrNotELF, p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotELF, err)
	}
	defer f.Close()
	// Every symbol table, whatever its name (f.Symbols reads the first of
	// type SHT_SYMTAB): bounded in count and by the file.
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_SYMTAB && sec.Type != elf.SHT_DYNSYM {
			continue
		}
		if sec.Offset > uint64(size) || sec.Size > uint64(size)-sec.Offset {
			return nil, fmt.Errorf("%w: the symbol table %s lies beyond the file", ErrNotELF, sec.Name)
		}
		if n := sec.Size / 16; n > MaxSymbols { // 16 bytes: the smaller (32-bit) entry
			return nil, fmt.Errorf("%w: the symbol table %s may hold %d symbols, more than the %d read", ErrTooManySymbols, sec.Name, n, MaxSymbols)
		}
	}
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("reading the symbol table: %w", err)
	}
	c = &Composition{FileSize: size}
	// Symbols by section, in address order.
	bySection := map[elf.SectionIndex][]elf.Symbol{}
	for _, s := range syms {
		t := elf.ST_TYPE(s.Info)
		if s.Section == elf.SHN_UNDEF || s.Section >= elf.SHN_LORESERVE || int(s.Section) >= len(f.Sections) ||
			t == elf.STT_SECTION || t == elf.STT_FILE || s.Name == "" {
			continue
		}
		bySection[s.Section] = append(bySection[s.Section], s)
	}
	goBinary := f.Section(".go.buildinfo") != nil
	units := map[[2]string]int64{}
	for idx, ss := range bySection {
		sec := f.Sections[idx]
		if sec.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		// Bytes the section takes in the file (none for .bss), so that
		// shares add up to the file size.
		fileBytes := sec.FileSize
		if sec.Type == elf.SHT_NOBITS {
			fileBytes = 0
		}
		if fileBytes == 0 || sec.Offset > uint64(size) || fileBytes > uint64(size)-sec.Offset || sec.Addr+fileBytes < sec.Addr {
			continue // empty, or larger than the file (a crafted header)
		}
		slices.SortStableFunc(ss, func(a, b elf.Symbol) int {
			switch {
			case a.Value != b.Value:
				if a.Value < b.Value {
					return -1
				}
				return 1
			case a.Size != b.Size: // the sized symbol of an alias first
				if a.Size > b.Size {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Name, b.Name)
		})
		end := sec.Addr + fileBytes
		covered := sec.Addr // bytes below this are attributed already
		for i, s := range ss {
			start := max(s.Value, covered)
			stop := s.Value + s.Size
			if s.Size == 0 {
				stop = end
				for _, n := range ss[i+1:] {
					if n.Value > s.Value {
						stop = n.Value
						break
					}
				}
			}
			stop = min(stop, end)
			if start >= stop || s.Value < sec.Addr {
				continue
			}
			lib, unit := Classify(s.Name, goBinary)
			n := int64(stop - start) // ≤ fileBytes ≤ size
			k := [2]string{lib, unit}
			units[k] = min(units[k]+n, size) // sections may overlap in a crafted file
			c.Attributed = min(c.Attributed+n, size)
			c.Symbols++
			covered = stop
		}
	}
	libs := map[string]*Library{}
	for k, n := range units {
		l := libs[k[0]]
		if l == nil {
			l = &Library{Name: k[0]}
			libs[k[0]] = l
		}
		l.Size = min(l.Size+n, size)
		l.Units = append(l.Units, Unit{Name: k[1], Size: n})
	}
	for _, l := range libs {
		slices.SortFunc(l.Units, func(a, b Unit) int { return bySize(a.Size, b.Size, a.Name, b.Name) })
		c.Libraries = append(c.Libraries, *l)
	}
	slices.SortFunc(c.Libraries, func(a, b Library) int { return bySize(a.Size, b.Size, a.Name, b.Name) })
	c.Attributed = min(c.Attributed, c.FileSize)
	return c, nil
}

func bySize(a, b int64, an, bn string) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return strings.Compare(an, bn)
}

// Libraries of symbols that are not OCaml compilation units.
const (
	OCamlRuntime = "OCaml runtime"
	COther       = "C and other"
)

// Classify names the library and unit of a symbol:
//
//   - OCaml native code and data, camlUNIT then "__", "." or "$" and a
//     name (OCaml 4.x: camlStdlib__List__map_280; 5.x:
//     camlStdlib__List.map_280), give the compilation unit (Stdlib__List)
//     and its library, the unit name's first component (Stdlib); the
//     module block camlUNIT is the unit itself;
//   - caml_* symbols are the OCaml runtime's, per C symbol;
//   - in a Go binary (goBinary), Go symbols (path/to/pkg.Name) give the
//     package and its module (host/owner/repo) or the standard library;
//   - anything else is C and other, by symbol.
func Classify(sym string, goBinary bool) (library, unit string) {
	if rest, ok := strings.CutPrefix(sym, "caml"); ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
		unit = rest
		if i := strings.IndexAny(rest, ".$"); i > 0 {
			unit = rest[:i]
		}
		// OCaml 4.x: UNIT__name, where each component of the unit starts
		// with an upper-case letter and the name does not.
		parts := strings.Split(unit, "__")
		n := 1
		for n < len(parts) && parts[n] != "" && parts[n][0] >= 'A' && parts[n][0] <= 'Z' {
			n++
		}
		unit = strings.Join(parts[:n], "__")
		for _, suffix := range []string{"__code_begin", "__code_end", "__data_begin", "__data_end", "__frametable", "__gc_roots"} {
			unit = strings.TrimSuffix(unit, suffix)
		}
		return parts[0], unit
	}
	if strings.HasPrefix(sym, "caml_") {
		return OCamlRuntime, "runtime"
	}
	if goBinary {
		if pkg, ok := goPackage(sym); ok {
			lib := "Go standard library"
			if first, _, _ := strings.Cut(pkg, "/"); strings.Contains(first, ".") {
				// host/owner/repo: a module, near enough
				parts := strings.SplitN(pkg, "/", 4)
				lib = strings.Join(parts[:min(3, len(parts))], "/")
			}
			return lib, pkg
		}
	}
	return COther, "C and other"
}

// goPackage is the package path of a Go symbol: path/to/pkg.Name,
// path/to/pkg.(*T).M, type:..., go:... (the last two are the runtime's).
func goPackage(sym string) (string, bool) {
	if strings.HasPrefix(sym, "type:") || strings.HasPrefix(sym, "go:") {
		return "runtime", true
	}
	slash := strings.LastIndex(sym, "/")
	dot := strings.Index(sym[slash+1:], ".")
	if dot <= 0 {
		return "", false
	}
	return sym[:slash+1+dot], true
}
