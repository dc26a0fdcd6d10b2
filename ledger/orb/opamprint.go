package orb

import (
	"fmt"
	"strconv"
	"strings"
)

// Canonical opam syntax, as written by FormatOpamFile and (*Switch).Format:
//
//   - one item per line, nested items indented by two spaces;
//   - "name: value"; `kind "name" {` ... `}` for sections;
//   - a field whose value is a list is written on one line when all elements
//     are atoms and the line stays within 80 bytes, otherwise with one
//     element per line;
//   - strings containing a newline are written """triple-quoted""" with the
//     newlines kept; in every string '"' and '\' are escaped, and control
//     characters other than newline are written as \t, \r or \xHH;
//   - single spaces between the elements of lists, groups and filters, and
//     around binary operators;
//   - comments are not kept.
//
// Formatting first checks that the tree reads back as itself; see checkItems.

const lineWidth = 80

// FormatOpamFile writes items in canonical opam syntax. It fails if the items
// cannot be written so that ParseOpamFile reads them back unchanged: invalid
// field or section names, unknown operators, operands the grammar does not
// allow without parentheses (use a Group), nil values, or nesting deeper
// than MaxDepth.
func FormatOpamFile(items []Item) ([]byte, error) {
	if err := checkItems(items, 0); err != nil {
		return nil, err
	}
	var pr printer
	pr.items(items, 0)
	return pr.b, nil
}

// FormatValue returns v in canonical opam syntax, for display. Unlike
// FormatOpamFile it does not check that the text reads back as v.
func FormatValue(v Value) string {
	var pr printer
	pr.value(v)
	return string(pr.b)
}

type printer struct{ b []byte }

func (pr *printer) indent(n int) {
	for range n {
		pr.b = append(pr.b, ' ')
	}
}

func (pr *printer) items(items []Item, indent int) {
	for _, it := range items {
		pr.item(it, indent)
	}
}

func (pr *printer) item(it Item, indent int) {
	pr.indent(indent)
	switch it := it.(type) {
	case Field:
		pr.b = append(pr.b, it.Name...)
		pr.b = append(pr.b, ':', ' ')
		pr.fieldValue(it.Value, indent, indent+len(it.Name)+2)
		pr.b = append(pr.b, '\n')
	case Section:
		pr.b = append(pr.b, it.Kind...)
		if it.Name != "" {
			pr.b = append(pr.b, ' ')
			pr.b = appendString(pr.b, it.Name)
		}
		pr.b = append(pr.b, " {\n"...)
		pr.items(it.Items, indent+2)
		pr.indent(indent)
		pr.b = append(pr.b, "}\n"...)
	}
}

// fieldValue writes a field's value; col is the column after "name: ".
func (pr *printer) fieldValue(v Value, indent, col int) {
	l, ok := v.(List)
	if !ok || len(l) == 0 {
		pr.value(v)
		return
	}
	start := len(pr.b)
	pr.value(l)
	inline := col+len(pr.b)-start <= lineWidth
	for _, e := range l {
		inline = inline && isAtom(e)
	}
	if inline && !strings.ContainsRune(string(pr.b[start:]), '\n') {
		return
	}
	pr.b = append(pr.b[:start], "[\n"...)
	for _, e := range l {
		pr.indent(indent + 2)
		pr.value(e)
		pr.b = append(pr.b, '\n')
	}
	pr.indent(indent)
	pr.b = append(pr.b, ']')
}

func (pr *printer) values(vs []Value) {
	for i, v := range vs {
		if i > 0 {
			pr.b = append(pr.b, ' ')
		}
		pr.value(v)
	}
}

func (pr *printer) value(v Value) {
	switch v := v.(type) {
	case Bool:
		pr.b = strconv.AppendBool(pr.b, bool(v))
	case Int:
		pr.b = strconv.AppendInt(pr.b, int64(v), 10)
	case String:
		pr.b = appendString(pr.b, string(v))
	case Ident:
		pr.b = append(pr.b, v...)
	case List:
		pr.b = append(pr.b, '[')
		pr.values(v)
		pr.b = append(pr.b, ']')
	case Group:
		pr.b = append(pr.b, '(')
		pr.values(v)
		pr.b = append(pr.b, ')')
	case Option:
		pr.value(v.Value)
		pr.b = append(pr.b, " {"...)
		pr.values(v.Filter)
		pr.b = append(pr.b, '}')
	case Relop:
		pr.binary(v.Left, v.Op, v.Right)
	case Logop:
		pr.binary(v.Left, v.Op, v.Right)
	case EnvBinding:
		pr.binary(v.Name, v.Op, v.Value)
	case PrefixRelop:
		pr.b = append(pr.b, v.Op...)
		pr.b = append(pr.b, ' ')
		pr.value(v.Value)
	case Pfxop:
		pr.b = append(pr.b, v.Op...)
		if startsWithRelop(v.Value) {
			// "! = x" must not read as "!= x".
			pr.b = append(pr.b, ' ')
		}
		pr.value(v.Value)
	default:
		pr.b = append(pr.b, fmt.Sprintf("<invalid %T>", v)...)
	}
}

func (pr *printer) binary(l Value, op string, r Value) {
	pr.value(l)
	pr.b = append(pr.b, ' ')
	pr.b = append(pr.b, op...)
	pr.b = append(pr.b, ' ')
	pr.value(r)
}

// appendString appends s as an opam string literal.
func appendString(b []byte, s string) []byte {
	triple := strings.IndexByte(s, '\n') >= 0
	if triple {
		b = append(b, `"""`...)
	} else {
		b = append(b, '"')
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, c)
		case c == '\t':
			b = append(b, `\t`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c < 0x20 || c == 0x7f:
			b = append(b, `\x`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	if triple {
		return append(b, `"""`...)
	}
	return append(b, '"')
}

// startsWithRelop reports whether v's text begins with a comparison operator.
func startsWithRelop(v Value) bool {
	for {
		switch w := v.(type) {
		case PrefixRelop:
			return true
		case Option:
			v = w.Value
		case Logop:
			v = w.Left
		default:
			return false
		}
	}
}

// endsWithOpenAtom reports whether v's text ends with an atom that a
// following comparison operator would take as its left operand.
func endsWithOpenAtom(v Value) bool {
	for {
		switch w := v.(type) {
		case Bool, Int, String, Ident:
			return true
		case Logop:
			v = w.Right
		case Pfxop:
			v = w.Value
		default:
			return false
		}
	}
}

// The check* functions mirror the parser (parseValue, parseAnd, parseUnary,
// parsePostfix, parsePrimary) including its depth accounting, so a tree that
// passes is printed as text that parses back to the same tree.

func checkErr(format string, args ...any) error {
	return fmt.Errorf("orb: cannot format opam value: "+format, args...)
}

func checkItems(items []Item, d int) error {
	for _, it := range items {
		switch it := it.(type) {
		case Field:
			if !validIdent(it.Name) {
				return checkErr("invalid field name %s", quote(it.Name))
			}
			if err := checkValue(it.Value, d); err != nil {
				return fmt.Errorf("%w (in field %s)", err, it.Name)
			}
		case Section:
			if !validIdent(it.Kind) {
				return checkErr("invalid section kind %s", quote(it.Kind))
			}
			if d >= MaxDepth {
				return checkErr("nesting deeper than %d levels", MaxDepth)
			}
			if err := checkItems(it.Items, d+1); err != nil {
				return err
			}
		default:
			return checkErr("unknown item type %T", it)
		}
	}
	return nil
}

// chain returns the operands of a left-nested chain of the binary operator
// op, leftmost first.
func chain(v Value, op string) []Value {
	var rights []Value
	for {
		l, ok := v.(Logop)
		if !ok || l.Op != op {
			break
		}
		rights = append(rights, l.Right)
		v = l.Left
	}
	out := make([]Value, 0, len(rights)+1)
	out = append(out, v)
	for i := len(rights) - 1; i >= 0; i-- {
		out = append(out, rights[i])
	}
	return out
}

func checkValue(v Value, d int) error { return checkChain(v, d, "|") }

func checkChain(v Value, d int, op string) error {
	operands := chain(v, op)
	if d+len(operands)-1 > MaxDepth {
		return checkErr("nesting deeper than %d levels", MaxDepth)
	}
	for i, o := range operands {
		var err error
		if op == "|" {
			err = checkChain(o, d+i, "&")
		} else {
			err = checkUnary(o, d+i)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkUnary(v Value, d int) error {
	for {
		p, ok := v.(Pfxop)
		if !ok {
			return checkPostfix(v, d)
		}
		if p.Op != "!" && p.Op != "?" {
			return checkErr("unknown prefix operator %s", quote(p.Op))
		}
		if d >= MaxDepth {
			return checkErr("nesting deeper than %d levels", MaxDepth)
		}
		v, d = p.Value, d+1
	}
}

func checkPostfix(v Value, d int) error {
	var filters [][]Value
	for {
		o, ok := v.(Option)
		if !ok {
			break
		}
		filters = append(filters, o.Filter)
		v = o.Value
	}
	if d+len(filters) > MaxDepth {
		return checkErr("nesting deeper than %d levels", MaxDepth)
	}
	for j := range filters {
		// The innermost filter is parsed first, one level down.
		if err := checkValues(filters[len(filters)-1-j], d+j+1); err != nil {
			return err
		}
	}
	return checkPrimary(v, d)
}

func checkAtom(v Value) error {
	switch v := v.(type) {
	case Bool, Int, String:
		return nil
	case Ident:
		if !validIdent(string(v)) {
			return checkErr("invalid identifier %s", quote(string(v)))
		}
		return nil
	}
	return checkErr("operand %T of a comparison or environment update must be a string, identifier, integer or boolean", v)
}

func checkPrimary(v Value, d int) error {
	switch v := v.(type) {
	case Bool, Int, String, Ident:
		return checkAtom(v)
	case Relop:
		if !isRelop(v.Op) {
			return checkErr("unknown comparison operator %s", quote(v.Op))
		}
		if err := checkAtom(v.Left); err != nil {
			return err
		}
		return checkAtom(v.Right)
	case EnvBinding:
		if !isEnvop(v.Op) {
			return checkErr("unknown environment update operator %s", quote(v.Op))
		}
		if err := checkAtom(v.Name); err != nil {
			return err
		}
		return checkAtom(v.Value)
	case PrefixRelop:
		if !isRelop(v.Op) {
			return checkErr("unknown comparison operator %s", quote(v.Op))
		}
		return checkAtom(v.Value)
	case List:
		return checkNested(v, d)
	case Group:
		return checkNested(v, d)
	case Logop, Pfxop, Option:
		return checkErr("%s needs parentheses here (wrap it in a Group)", FormatValue(v))
	case nil:
		return checkErr("nil value")
	}
	return checkErr("unknown value type %T", v)
}

func checkNested(vs []Value, d int) error {
	if d >= MaxDepth {
		return checkErr("nesting deeper than %d levels", MaxDepth)
	}
	return checkValues(vs, d+1)
}

// checkValues checks the elements of a list, group or filter.
func checkValues(vs []Value, d int) error {
	for i, v := range vs {
		if err := checkValue(v, d); err != nil {
			return err
		}
		if i > 0 && startsWithRelop(v) && endsWithOpenAtom(vs[i-1]) {
			return checkErr("%s followed by %s would read as one comparison",
				FormatValue(vs[i-1]), FormatValue(v))
		}
	}
	return nil
}
