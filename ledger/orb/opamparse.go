package orb

// The parser of the opam file format: items, sections and values with
// opam-file-format's operator precedences, over the tokens of opamlex.go.

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
