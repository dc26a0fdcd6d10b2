package orb

import (
	"fmt"
	"strconv"
	"strings"
)

// The lexer below and the parser in opamparse.go follow the opam file
// format as implemented by opam-file-format (opamLexer.mll,
// opamBaseParser.mly): the same tokens with longest-match lexing, and the
// same operator precedences, lowest first: "|", "&", prefix "!"/"?",
// postfix option braces, comparisons.

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
