package orb

// This file defines the value tree of the opam file format ("Common file
// format" in the opam manual). The tree has no source positions, so two trees
// compare equal with reflect.DeepEqual exactly when they mean the same thing.

// MaxDepth bounds how deeply values and sections may nest: sections, lists,
// groups, option filters, prefix operators and every operator of a chain of
// "&" or "|" each count one level. Deeper input is rejected by the parsers and
// by the formatters, which keeps recursion bounded on untrusted input.
const MaxDepth = 64

// Item is one entry of an opam file or section: a Field or a Section.
type Item interface{ isItem() }

// Field is "name: value".
type Field struct {
	Name  string
	Value Value
}

// Section is `kind { items }` or `kind "name" { items }`, for example
// `url { src: "..." }` or `extra-source "patch.diff" { ... }`. Name is empty
// for an unnamed section; the parser rejects an explicitly empty name ("").
type Section struct {
	Kind  string
	Name  string
	Items []Item
}

func (Field) isItem()   {}
func (Section) isItem() {}

// Value is a value of the opam file format: one of Bool, Int, String, Ident,
// List, Group, Option, Relop, PrefixRelop, Logop, Pfxop and EnvBinding.
type Value interface{ isValue() }

// Bool is true or false.
type Bool bool

// Int is an integer literal.
type Int int64

// String is a string literal, already unescaped ("..." or """...""").
type String string

// Ident is an identifier such as a variable: name, jobs, ocaml:version,
// _:share, a+b:installed.
type Ident string

// List is [ v1 v2 ... ].
type List []Value

// Group is ( v1 v2 ... ).
type Group []Value

// Option is a value followed by a filter or constraint in braces:
// `"dune" {>= "2.7"}`, `["make" "test"] {with-test}`.
type Option struct {
	Value  Value
	Filter []Value
}

// Relop is a comparison `Left Op Right` between two atoms (Bool, Int, String
// or Ident). Op is one of "=", "!=", "<", "<=", ">", ">="; the manual's "~" is
// read as ">=", as opam does.
type Relop struct {
	Op          string
	Left, Right Value
}

// PrefixRelop is a version constraint without left operand: `>= "4.08"`.
// Value is an atom.
type PrefixRelop struct {
	Op    string
	Value Value
}

// Logop is `Left & Right` or `Left | Right`.
type Logop struct {
	Op          string
	Left, Right Value
}

// Pfxop is `!Value` (not) or `?Value` (is defined).
type Pfxop struct {
	Op    string
	Value Value
}

// EnvBinding is an environment update `NAME op value` with op one of "+=",
// "=+", "=+=", ":=", "=:". (`NAME = value` reads as a Relop, as in opam.)
// Name and Value are atoms.
type EnvBinding struct {
	Name  Value
	Op    string
	Value Value
}

func (Bool) isValue()        {}
func (Int) isValue()         {}
func (String) isValue()      {}
func (Ident) isValue()       {}
func (List) isValue()        {}
func (Group) isValue()       {}
func (Option) isValue()      {}
func (Relop) isValue()       {}
func (PrefixRelop) isValue() {}
func (Logop) isValue()       {}
func (Pfxop) isValue()       {}
func (EnvBinding) isValue()  {}

func isAtom(v Value) bool {
	switch v.(type) {
	case Bool, Int, String, Ident:
		return true
	}
	return false
}

func isRelop(op string) bool {
	switch op {
	case "=", "!=", "<", "<=", ">", ">=":
		return true
	}
	return false
}

func isEnvop(op string) bool {
	switch op {
	case "+=", "=+", "=+=", ":=", "=:":
		return true
	}
	return false
}

// field returns the value of the first field called name in items.
func field(items []Item, name string) (Value, bool) {
	for _, it := range items {
		if f, ok := it.(Field); ok && f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// section returns the first section of the given kind and name in items.
func section(items []Item, kind, name string) (Section, bool) {
	for _, it := range items {
		if s, ok := it.(Section); ok && s.Kind == kind && s.Name == name {
			return s, true
		}
	}
	return Section{}, false
}

// stringField returns the first field called name if it is a string.
func stringField(items []Item, name string) string {
	v, _ := field(items, name)
	s, _ := v.(String)
	return string(s)
}

// stringList reads a string or a list of strings; other values give nil.
func stringList(v Value) []string {
	switch v := v.(type) {
	case String:
		return []string{string(v)}
	case List:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(String)
			if !ok {
				return nil
			}
			out = append(out, string(s))
		}
		return out
	}
	return nil
}
