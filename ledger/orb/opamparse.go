package orb

import (
	"fmt"
	"strconv"
	"strings"
)

// The lexer and parser below follow the opam file format as implemented by
// opam-file-format (opamLexer.mll, opamBaseParser.mly): the same tokens with
// longest-match lexing, and the same operator precedences, lowest first:
// "|", "&", prefix "!"/"?", postfix option braces, comparisons.

type tokKind uint8

const (
	tEOF tokKind = iota
	tString
	tIdent
	tBool
	tInt
	tColon
	tLBrace
	tRBrace
	tLBracket
	tRBracket
	tLParen
	tRParen
	tRelop
	tAnd
	tOr
	tPfxop
	tEnvop
)

// pos is a 1-based line and byte column.
type pos struct{ line, col int }

type token struct {
	kind tokKind
	text string // string contents, identifier or operator
	num  int64
	bval bool
	pos  pos
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tString:
		return "string " + quote(t.text)
	case tIdent:
		return "identifier " + t.text
	case tBool:
		return strconv.FormatBool(t.bval)
	case tInt:
		return "integer " + strconv.FormatInt(t.num, 10)
	case tColon:
		return `":"`
	case tLBrace:
		return `"{"`
	case tRBrace:
		return `"}"`
	case tLBracket:
		return `"["`
	case tRBracket:
		return `"]"`
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tAnd:
		return `"&"`
	case tOr:
		return `"|"`
	}
	return strconv.Quote(t.text) // operators
}

type lexer struct {
	file      string
	src       []byte
	off       int
	line      int
	lineStart int
}

func (l *lexer) here() pos { return pos{l.line, l.off - l.lineStart + 1} }

func (l *lexer) errorf(p pos, format string, args ...any) error {
	return &SyntaxError{File: l.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)}
}

// newline records that the byte at l.off-1 was a '\n'.
func (l *lexer) newline() {
	l.line++
	l.lineStart = l.off
}

func (l *lexer) peekByte(i int) byte {
	if l.off+i < len(l.src) {
		return l.src[l.off+i]
	}
	return 0
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isIchar(c byte) bool { return isAlpha(c) || isDigit(c) || c == '_' || c == '-' }

// scanSeg matches one identifier segment (id | '_') at i, longest first, and
// returns its end or -1. id is ichar* alpha ichar*.
func scanSeg(s []byte, i int) int {
	j, alpha := i, false
	for j < len(s) && isIchar(s[j]) {
		alpha = alpha || isAlpha(s[j])
		j++
	}
	switch {
	case alpha:
		return j
	case i < len(s) && s[i] == '_':
		return i + 1
	}
	return -1
}

// scanIdent matches (id | '_') ('+' (id | '_'))* (':' id)? at i and returns
// the end of the longest match or -1.
func scanIdent(s []byte, i int) int {
	e := scanSeg(s, i)
	if e < 0 {
		return -1
	}
	for e < len(s) && s[e] == '+' {
		e2 := scanSeg(s, e+1)
		if e2 < 0 {
			break
		}
		e = e2
	}
	if e < len(s) && s[e] == ':' {
		j, alpha := e+1, false
		for j < len(s) && isIchar(s[j]) {
			alpha = alpha || isAlpha(s[j])
			j++
		}
		if alpha {
			e = j
		}
	}
	return e
}

// scanInt matches '-'? ['0'-'9' '_']+ at i and returns its end or -1.
func scanInt(s []byte, i int) int {
	j := i
	if j < len(s) && s[j] == '-' {
		j++
	}
	k := j
	for k < len(s) && (isDigit(s[k]) || s[k] == '_') {
		k++
	}
	if k == j {
		return -1
	}
	return k
}

// validIdent reports whether s lexes as exactly one identifier token.
func validIdent(s string) bool {
	b := []byte(s)
	return len(b) > 0 && scanIdent(b, 0) == len(b) && scanInt(b, 0) < len(b) &&
		s != "true" && s != "false"
}

// skipSpace skips blanks, newlines and comments.
func (l *lexer) skipSpace() error {
	for l.off < len(l.src) {
		switch c := l.src[l.off]; {
		case c == ' ' || c == '\t':
			l.off++
		case c == '\n':
			l.off++
			l.newline()
		case c == '\r' && l.peekByte(1) == '\n':
			l.off += 2
			l.newline()
		case c == '#':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.off++
			}
		case c == '(' && l.peekByte(1) == '*':
			if err := l.skipComment(); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

// skipComment skips a (possibly nested) (* ... *) comment.
func (l *lexer) skipComment() error {
	start := l.here()
	l.off += 2
	depth := 1
	for l.off < len(l.src) {
		switch {
		case l.src[l.off] == '*' && l.peekByte(1) == ')':
			l.off += 2
			if depth--; depth == 0 {
				return nil
			}
		case l.src[l.off] == '(' && l.peekByte(1) == '*':
			l.off += 2
			depth++
		case l.src[l.off] == '\n':
			l.off++
			l.newline()
		default:
			l.off++
		}
	}
	return l.errorf(start, "unterminated comment: \"(*\" has no matching \"*)\"")
}

func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	p := l.here()
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: p}, nil
	}
	c := l.src[l.off]
	single := func(k tokKind, n int, text string) (token, error) {
		l.off += n
		return token{kind: k, text: text, pos: p}, nil
	}
	switch c {
	case ':':
		if l.peekByte(1) == '=' {
			return single(tEnvop, 2, ":=")
		}
		return single(tColon, 1, ":")
	case '{':
		return single(tLBrace, 1, "{")
	case '}':
		return single(tRBrace, 1, "}")
	case '[':
		return single(tLBracket, 1, "[")
	case ']':
		return single(tRBracket, 1, "]")
	case '(':
		return single(tLParen, 1, "(")
	case ')':
		return single(tRParen, 1, ")")
	case '&':
		return single(tAnd, 1, "&")
	case '|':
		return single(tOr, 1, "|")
	case '?':
		return single(tPfxop, 1, "?")
	case '!':
		if l.peekByte(1) == '=' {
			return single(tRelop, 2, "!=")
		}
		return single(tPfxop, 1, "!")
	case '~':
		return single(tRelop, 1, ">=")
	case '<', '>':
		if l.peekByte(1) == '=' {
			return single(tRelop, 2, string(c)+"=")
		}
		return single(tRelop, 1, string(c))
	case '=':
		switch n := l.peekByte(1); {
		case n == '+' && l.peekByte(2) == '=':
			return single(tEnvop, 3, "=+=")
		case n == ':' && l.peekByte(2) == '=':
			return token{}, l.errorf(p, "\"=:=\" is not a valid environment update operator")
		case n == '+' || n == ':':
			return single(tEnvop, 2, "="+string(n))
		}
		return single(tRelop, 1, "=")
	case '+':
		if l.peekByte(1) == '=' {
			return single(tEnvop, 2, "+=")
		}
	case '"':
		if l.peekByte(1) == '"' && l.peekByte(2) == '"' {
			return l.lexString(p, true)
		}
		return l.lexString(p, false)
	}
	if isIchar(c) {
		return l.lexWord(p)
	}
	if c == '\r' {
		return token{}, l.errorf(p, "carriage return not followed by a newline")
	}
	if c < 0x20 || c >= 0x7f {
		return token{}, l.errorf(p, "unexpected byte 0x%02x", c)
	}
	return token{}, l.errorf(p, "unexpected character %q", c)
}

// lexWord lexes a boolean, an integer or an identifier, whichever match is
// longest; on a tie the order is boolean, integer, identifier (as in opam).
func (l *lexer) lexWord(p pos) (token, error) {
	ie := scanIdent(l.src, l.off)
	ne := scanInt(l.src, l.off)
	if ie < 0 && ne < 0 {
		return token{}, l.errorf(p, "unexpected character %q", l.src[l.off])
	}
	if ne >= ie {
		text := string(l.src[l.off:ne])
		l.off = ne
		digits := strings.TrimPrefix(text, "-")
		if !isDigit(digits[0]) {
			return token{}, l.errorf(p, "invalid integer %q: it must start with a digit", text)
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 10, 64)
		if err != nil {
			return token{}, l.errorf(p, "integer %s is out of range", text)
		}
		return token{kind: tInt, text: text, num: n, pos: p}, nil
	}
	text := string(l.src[l.off:ie])
	l.off = ie
	switch text {
	case "true", "false":
		return token{kind: tBool, text: text, bval: text == "true", pos: p}, nil
	}
	return token{kind: tIdent, text: text, pos: p}, nil
}

// lexString lexes "..." or """...""" starting at l.off.
func (l *lexer) lexString(p pos, triple bool) (token, error) {
	if triple {
		l.off += 3
	} else {
		l.off++
	}
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return token{}, l.errorf(p, "unterminated string: no closing quote")
		}
		c := l.src[l.off]
		switch {
		case c == '"' && !triple:
			l.off++
			return token{kind: tString, text: b.String(), pos: p}, nil
		case c == '"' && l.peekByte(1) == '"' && l.peekByte(2) == '"':
			l.off += 3
			return token{kind: tString, text: b.String(), pos: p}, nil
		case c == '\\':
			if err := l.lexEscape(&b); err != nil {
				return token{}, err
			}
		case c == '\n':
			l.off++
			l.newline()
			b.WriteByte(c)
		default:
			// Copy a run of ordinary bytes at once.
			j := l.off + 1
			for j < len(l.src) && l.src[j] != '"' && l.src[j] != '\\' && l.src[j] != '\n' {
				j++
			}
			b.Write(l.src[l.off:j])
			l.off = j
		}
	}
}

// lexEscape reads the escape sequence at l.off (a backslash) into b.
func (l *lexer) lexEscape(b *strings.Builder) error {
	p := l.here()
	l.off++ // backslash
	if l.off >= len(l.src) {
		return l.errorf(p, "unterminated string: backslash at end of file")
	}
	c := l.src[l.off]
	switch c {
	case '\r', '\n':
		// Line continuation: backslash, newline, then blanks are dropped.
		if c == '\r' {
			if l.peekByte(1) != '\n' {
				return l.errorf(p, "illegal escape sequence: backslash before a lone carriage return")
			}
			l.off++
		}
		l.off++
		l.newline()
		for l.off < len(l.src) && (l.src[l.off] == ' ' || l.src[l.off] == '\t') {
			l.off++
		}
		return nil
	case '\\', '"', '\'', ' ':
		b.WriteByte(c)
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'b':
		b.WriteByte('\b')
	case 'x':
		if l.off+2 < len(l.src) {
			if n, err := strconv.ParseUint(string(l.src[l.off+1:l.off+3]), 16, 8); err == nil {
				b.WriteByte(byte(n))
				l.off += 3
				return nil
			}
		}
		return l.errorf(p, "illegal escape sequence: \\x must be followed by two hex digits")
	default:
		if isDigit(c) {
			if l.off+2 < len(l.src) && isDigit(l.src[l.off+1]) && isDigit(l.src[l.off+2]) {
				n, _ := strconv.Atoi(string(l.src[l.off : l.off+3]))
				if n <= 255 {
					b.WriteByte(byte(n))
					l.off += 3
					return nil
				}
			}
			return l.errorf(p, "illegal escape sequence: \\ followed by a digit must be a decimal byte \\000 to \\255")
		}
		if c < 0x20 || c >= 0x7f {
			return l.errorf(p, "illegal escape sequence: backslash before byte 0x%02x", c)
		}
		return l.errorf(p, "illegal escape sequence \"\\%c\" (use \\\\ for a backslash)", c)
	}
	l.off++
	return nil
}

// parser is a recursive-descent parser with one token of lookahead.
type parser struct {
	lex   lexer
	tok   token
	depth int

	// When recordElems is set, the next list parsed records the positions
	// of its elements in elems (used for the top-level switch fields).
	recordElems bool
	elems       []pos
}

// topInfo holds source positions of a top-level item, for errors found when
// the item is interpreted.
type topInfo struct {
	pos      pos   // the item's name
	valuePos pos   // a field's value
	elems    []pos // elements of a field's list value
}

func newParser(file string, data []byte) *parser {
	return &parser{lex: lexer{file: file, src: data, line: 1}}
}

func (p *parser) errorf(at pos, format string, args ...any) error {
	return p.lex.errorf(at, format, args...)
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) enter(at pos) error {
	if p.depth >= MaxDepth {
		return p.errorf(at, "nesting deeper than %d levels", MaxDepth)
	}
	p.depth++
	return nil
}

// parseFile parses a whole opam file. If info is non-nil it receives the
// positions of the top-level items.
func (p *parser) parseFile(info *[]topInfo) ([]Item, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	items, err := p.parseItems(pos{}, info)
	if err != nil {
		return nil, err
	}
	return items, nil
}

// parseItems parses items up to "}" (inside a section opened at open) or end
// of file (top level, open is the zero pos).
func (p *parser) parseItems(open pos, info *[]topInfo) ([]Item, error) {
	top := open == pos{}
	var items []Item
	for {
		switch p.tok.kind {
		case tEOF:
			if !top {
				return nil, p.errorf(open, "section is not closed: \"{\" has no matching \"}\"")
			}
			return items, nil
		case tRBrace:
			if top {
				return nil, p.errorf(p.tok.pos, "unexpected \"}\" outside a section")
			}
			return items, nil
		case tIdent:
		case tString, tBool, tInt, tLBracket, tLParen, tRelop, tPfxop:
			if len(items) > 0 {
				if _, ok := items[len(items)-1].(Field); ok {
					return nil, p.errorf(p.tok.pos, "unexpected %s after a field value (a field takes one value; use [ ] for a list)", p.tok.describe())
				}
			}
			return nil, p.errorf(p.tok.pos, "expected a field name, found %s", p.tok.describe())
		default:
			return nil, p.errorf(p.tok.pos, "expected a field name, found %s", p.tok.describe())
		}
		name := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		ti := topInfo{pos: name.pos}
		switch p.tok.kind {
		case tColon:
			if err := p.advance(); err != nil {
				return nil, err
			}
			if !valueStart(p.tok.kind) {
				return nil, p.errorf(p.tok.pos, "expected a value after \"%s:\", found %s", name.text, p.tok.describe())
			}
			ti.valuePos = p.tok.pos
			p.recordElems, p.elems = info != nil, nil
			v, err := p.parseValue()
			if err != nil {
				return nil, err
			}
			ti.elems, p.recordElems, p.elems = p.elems, false, nil
			items = append(items, Field{Name: name.text, Value: v})
		case tLBrace, tString:
			s, err := p.parseSection(name)
			if err != nil {
				return nil, err
			}
			items = append(items, s)
		default:
			return nil, p.errorf(p.tok.pos, "expected \":\" or \"{\" after %s, found %s", name.text, p.tok.describe())
		}
		if info != nil {
			*info = append(*info, ti)
		}
	}
}

func (p *parser) parseSection(kind token) (Section, error) {
	s := Section{Kind: kind.text}
	if p.tok.kind == tString {
		if p.tok.text == "" {
			return Section{}, p.errorf(p.tok.pos, "empty section name")
		}
		s.Name = p.tok.text
		if err := p.advance(); err != nil {
			return Section{}, err
		}
		if p.tok.kind != tLBrace {
			return Section{}, p.errorf(p.tok.pos, "expected \"{\" after section %s %s, found %s", kind.text, quote(s.Name), p.tok.describe())
		}
	}
	open := p.tok.pos
	if err := p.enter(open); err != nil {
		return Section{}, err
	}
	if err := p.advance(); err != nil {
		return Section{}, err
	}
	items, err := p.parseItems(open, nil)
	if err != nil {
		return Section{}, err
	}
	p.depth--
	s.Items = items
	return s, p.advance() // the "}"
}

func valueStart(k tokKind) bool {
	switch k {
	case tString, tIdent, tBool, tInt, tLBracket, tLParen, tRelop, tPfxop:
		return true
	}
	return false
}

// parseValue parses value | value ...
func (p *parser) parseValue() (Value, error) { return p.parseLogop(tOr, "|", p.parseAnd) }

// parseAnd parses value & value ...
func (p *parser) parseAnd() (Value, error) { return p.parseLogop(tAnd, "&", p.parseUnary) }

// parseLogop parses a left-associative chain of operands (each parsed by
// next) joined by the logical operator op.
func (p *parser) parseLogop(op tokKind, sym string, next func() (Value, error)) (Value, error) {
	left, err := next()
	if err != nil {
		return nil, err
	}
	n := 0
	defer func() { p.depth -= n }()
	for p.tok.kind == op {
		if err := p.enter(p.tok.pos); err != nil {
			return nil, err
		}
		n++
		right, err := p.operand(next)
		if err != nil {
			return nil, err
		}
		left = Logop{Op: sym, Left: left, Right: right}
	}
	return left, nil
}

// operand skips the operator token and parses its right operand.
func (p *parser) operand(parse func() (Value, error)) (Value, error) {
	op := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	if !valueStart(p.tok.kind) {
		return nil, p.errorf(p.tok.pos, "expected a value after %s, found %s", op.describe(), p.tok.describe())
	}
	return parse()
}

// parseUnary parses !value, ?value or a postfix value.
func (p *parser) parseUnary() (Value, error) {
	if p.tok.kind != tPfxop {
		return p.parsePostfix()
	}
	if err := p.enter(p.tok.pos); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	op := p.tok.text
	v, err := p.operand(p.parseUnary)
	if err != nil {
		return nil, err
	}
	return Pfxop{Op: op, Value: v}, nil
}

// parsePostfix parses a primary value followed by any number of {filters}.
func (p *parser) parsePostfix() (Value, error) {
	v, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	n := 0
	defer func() { p.depth -= n }()
	for p.tok.kind == tLBrace {
		open := p.tok.pos
		if err := p.enter(open); err != nil {
			return nil, err
		}
		n++
		if err := p.advance(); err != nil {
			return nil, err
		}
		vals, err := p.parseValues(open, tRBrace)
		if err != nil {
			return nil, err
		}
		v = Option{Value: v, Filter: vals}
	}
	return v, nil
}

func (p *parser) atom() (Value, bool) {
	switch p.tok.kind {
	case tString:
		return String(p.tok.text), true
	case tIdent:
		return Ident(p.tok.text), true
	case tBool:
		return Bool(p.tok.bval), true
	case tInt:
		return Int(p.tok.num), true
	}
	return nil, false
}

// atomAfter parses the atom that must follow the operator token op.
func (p *parser) atomAfter(op token) (Value, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	a, ok := p.atom()
	if !ok {
		return nil, p.errorf(p.tok.pos, "expected a string, identifier, integer or boolean after %s, found %s", op.describe(), p.tok.describe())
	}
	return a, p.advance()
}

func (p *parser) parsePrimary() (Value, error) {
	if p.recordElems {
		// Only the outermost list of a field records positions; any
		// other value at the top of a field records none.
		if p.tok.kind != tLBracket {
			p.recordElems = false
		}
	}
	if a, ok := p.atom(); ok {
		if err := p.advance(); err != nil {
			return nil, err
		}
		switch op := p.tok; op.kind {
		case tRelop:
			b, err := p.atomAfter(op)
			if err != nil {
				return nil, err
			}
			return Relop{Op: op.text, Left: a, Right: b}, nil
		case tEnvop:
			b, err := p.atomAfter(op)
			if err != nil {
				return nil, err
			}
			return EnvBinding{Name: a, Op: op.text, Value: b}, nil
		}
		return a, nil
	}
	switch op := p.tok; op.kind {
	case tRelop:
		b, err := p.atomAfter(op)
		if err != nil {
			return nil, err
		}
		return PrefixRelop{Op: op.text, Value: b}, nil
	case tLBracket, tLParen:
		record := p.recordElems
		p.recordElems = false
		if err := p.enter(op.pos); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		if err := p.advance(); err != nil {
			return nil, err
		}
		closer := tRBracket
		if op.kind == tLParen {
			closer = tRParen
		}
		var elems *[]pos
		if record {
			elems = &p.elems
		}
		vals, err := p.parseValuesAt(op.pos, closer, elems)
		if err != nil {
			return nil, err
		}
		if op.kind == tLParen {
			return Group(vals), nil
		}
		return List(vals), nil
	}
	return nil, p.errorf(p.tok.pos, "expected a value, found %s", p.tok.describe())
}

func (p *parser) parseValues(open pos, closer tokKind) ([]Value, error) {
	return p.parseValuesAt(open, closer, nil)
}

// parseValuesAt parses values up to and including the closer token. The
// opening bracket was at open.
func (p *parser) parseValuesAt(open pos, closer tokKind, elems *[]pos) ([]Value, error) {
	var vals []Value
	for p.tok.kind != closer {
		if !valueStart(p.tok.kind) {
			opener, want := `"["`, `"]"`
			switch closer {
			case tRBrace:
				opener, want = `"{"`, `"}"`
			case tRParen:
				opener, want = `"("`, `")"`
			}
			if p.tok.kind == tEOF {
				return nil, p.errorf(open, "%s is not closed: no matching %s", opener, want)
			}
			return nil, p.errorf(p.tok.pos, "expected a value or %s, found %s", want, p.tok.describe())
		}
		if elems != nil {
			*elems = append(*elems, p.tok.pos)
		}
		v, err := p.parseValue()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, p.advance()
}

// ParseOpamFile parses data in the opam file format into its items, in file
// order. Comments are dropped; empty lists, groups, filters and sections give
// nil slices. Errors are *SyntaxError with the line and column, and name as
// the file name.
func ParseOpamFile(name string, data []byte) ([]Item, error) {
	return newParser(name, data).parseFile(nil)
}
