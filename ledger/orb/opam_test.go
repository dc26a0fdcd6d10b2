package orb

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// f is shorthand for a one-field file.
func f(name string, v Value) []Item { return []Item{Field{Name: name, Value: v}} }

func TestParseOpamFile(t *testing.T) {
	s, id := func(x string) String { return String(x) }, func(x string) Ident { return Ident(x) }
	tests := []struct {
		name string
		in   string
		want []Item
	}{
		{"empty", "", nil},
		{"comments only", "# a comment\n(* a (* nested *) comment *)\n", nil},
		{"string", `a: "x"`, f("a", s("x"))},
		{"escapes", `a: "q\" b\\ n\n t\t r\r sp\  ap\' d\065 x\x41 b\b"`, f("a", s("q\" b\\ n\n t\t r\r sp  ap' dA xA b\b"))},
		{"line continuation", "a: \"one \\\n     two\"", f("a", s("one two"))},
		{"literal newline in string", "a: \"x\ny\"", f("a", s("x\ny"))},
		{"triple-quoted", "a: \"\"\"\nsay \"hi\" \"\" ok\n\"\"\"", f("a", s("\nsay \"hi\" \"\" ok\n"))},
		{"empty strings", `a: ["" ""]`, f("a", List{s(""), s("")})},
		{"bools and ints", `a: [true false 42 -7 1_000]`, f("a", List{Bool(true), Bool(false), Int(42), Int(-7), Int(1000)})},
		{"identifiers", `a: [name jobs _:share ocaml:version a+b:installed trueish 1a -x]`,
			f("a", List{id("name"), id("jobs"), id("_:share"), id("ocaml:version"), id("a+b:installed"), id("trueish"), id("1a"), id("-x")})},
		{"option", `depends: ["dune" {>= "2.7"}]`, f("depends", List{Option{Value: s("dune"), Filter: []Value{PrefixRelop{">=", s("2.7")}}}})},
		{"empty option", `a: x {}`, f("a", Option{Value: id("x")})},
		{"tilde reads as >=", `a: "x" {~ "1"}`, f("a", Option{Value: s("x"), Filter: []Value{PrefixRelop{">=", s("1")}}})},
		{"and binds tighter than or", `a: x | y & z`, f("a", Logop{"|", id("x"), Logop{"&", id("y"), id("z")}})},
		{"left associative", `a: x & y & z`, f("a", Logop{"&", Logop{"&", id("x"), id("y")}, id("z")})},
		{"not binds tighter than and", `a: !x & y`, f("a", Logop{"&", Pfxop{"!", id("x")}, id("y")})},
		{"not takes the option", `a: !x {f}`, f("a", Pfxop{"!", Option{Value: id("x"), Filter: []Value{id("f")}}})},
		{"not takes a comparison", `a: !x = y`, f("a", Pfxop{"!", Relop{"=", id("x"), id("y")}})},
		{"option binds tighter than and", `a: x & y {f}`, f("a", Logop{"&", id("x"), Option{Value: id("y"), Filter: []Value{id("f")}}})},
		{"comparison takes atoms", `a: os = "linux" & arch != "arm64"`,
			f("a", Logop{"&", Relop{"=", id("os"), s("linux")}, Relop{"!=", id("arch"), s("arm64")}})},
		{"comparison in a list", `a: [x = y = z]`, f("a", List{Relop{"=", id("x"), id("y")}, PrefixRelop{"=", id("z")}})},
		{"prefix comparisons in a filter", `a: "x" {>= "1" & < "2"}`,
			f("a", Option{Value: s("x"), Filter: []Value{Logop{"&", PrefixRelop{">=", s("1")}, PrefixRelop{"<", s("2")}}}})},
		{"option of a comparison", `a: x = y {f}`, f("a", Option{Value: Relop{"=", id("x"), id("y")}, Filter: []Value{id("f")}})},
		{"option of an option", `a: x {f} {g}`, f("a", Option{Value: Option{Value: id("x"), Filter: []Value{id("f")}}, Filter: []Value{id("g")}})},
		{"groups", `a: ("x" | ("y" & "z"))`, f("a", Group{Logop{"|", s("x"), Group{Logop{"&", s("y"), s("z")}}}})},
		{"defined", `a: ?x`, f("a", Pfxop{"?", id("x")})},
		{"env bindings", `setenv: [[A += "x"] [B =+ "y"] [C =+= "z"] [D := "w"] [E =: "v"] [F = "u"]]`,
			f("setenv", List{
				List{EnvBinding{id("A"), "+=", s("x")}}, List{EnvBinding{id("B"), "=+", s("y")}},
				List{EnvBinding{id("C"), "=+=", s("z")}}, List{EnvBinding{id("D"), ":=", s("w")}},
				List{EnvBinding{id("E"), "=:", s("v")}}, List{Relop{"=", id("F"), s("u")}},
			})},
		{"sections", "url {\n  src: \"x\"\n}\nextra-source \"p.diff\" {\n  src: \"y\"\n  checksum: \"md5=0\"\n}\nempty {}",
			[]Item{
				Section{Kind: "url", Items: f("src", s("x"))},
				Section{Kind: "extra-source", Name: "p.diff", Items: []Item{Field{"src", s("y")}, Field{"checksum", s("md5=0")}}},
				Section{Kind: "empty"},
			}},
		{"no spaces", `a:[x{f}]b:"y"`, []Item{Field{"a", List{Option{Value: id("x"), Filter: []Value{id("f")}}}}, Field{"b", s("y")}}},
		{"CRLF line endings", "a: \"x\"\r\nb: [\r\n  y\r\n]\r\n", []Item{Field{"a", s("x")}, Field{"b", List{id("y")}}}},
		{"CR kept inside strings", "a: \"x\r\ny\"", f("a", s("x\r\ny"))},
		{"comment ends at newline", "a: x # c\nb: y", []Item{Field{"a", id("x")}, Field{"b", id("y")}}},
		{"non-ASCII in strings", `a: "Jérôme Vouillon"`, f("a", s("Jérôme Vouillon"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOpamFile("test", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
			checkOpamRoundTrip(t, got)
		})
	}
}

// checkOpamRoundTrip checks Parse(Format(items)) == items and that
// formatting is a fixed point.
func checkOpamRoundTrip(t *testing.T, items []Item) {
	t.Helper()
	out, err := FormatOpamFile(items)
	if err != nil {
		t.Fatalf("FormatOpamFile: %v", err)
	}
	again, err := ParseOpamFile("formatted", out)
	if err != nil {
		t.Fatalf("parsing formatted text: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again, items) {
		t.Fatalf("Parse(Format(x)) != x\nformatted:\n%s\ngot  %#v\nwant %#v", out, again, items)
	}
	out2, err := FormatOpamFile(again)
	if err != nil || string(out2) != string(out) {
		t.Fatalf("Format is not a fixed point: %v\n%s\n---\n%s", err, out, out2)
	}
}

func TestFormatOpamFile(t *testing.T) {
	tests := []struct {
		name  string
		items []Item
		want  string
	}{
		{"short atom list inline", f("a", List{String("x"), Ident("y")}), "a: [\"x\" y]\n"},
		{"empty list", f("a", List(nil)), "a: []\n"},
		{"list of lists one per line", f("a", List{List{String("x")}, List{String("y")}}), "a: [\n  [\"x\"]\n  [\"y\"]\n]\n"},
		{"long list one per line", f("a", List{String(strings.Repeat("x", 40)), String(strings.Repeat("y", 40))}),
			"a: [\n  \"" + strings.Repeat("x", 40) + "\"\n  \"" + strings.Repeat("y", 40) + "\"\n]\n"},
		{"multi-line string", f("a", String("x\n\"y\"\\")), "a: \"\"\"x\n\\\"y\\\"\\\\\"\"\"\n"},
		{"control characters escaped", f("a", String("t\tr\rn\x00\x7f")), `a: "t\tr\rn\x00\x7f"` + "\n"},
		{"nested section", []Item{Section{Kind: "s", Name: "n", Items: []Item{Section{Kind: "url", Items: f("src", String("x"))}}}},
			"s \"n\" {\n  url {\n    src: \"x\"\n  }\n}\n"},
		{"operators spaced", f("a", Logop{"|", Pfxop{"!", Ident("x")}, Relop{"<", Ident("y"), Int(3)}}), "a: !x | y < 3\n"},
		{"not before a prefix comparison", f("a", Pfxop{"!", PrefixRelop{"=", String("1")}}), "a: ! = \"1\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := FormatOpamFile(tt.items)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", out, tt.want)
			}
			checkOpamRoundTrip(t, tt.items)
		})
	}
}

func TestFormatOpamFileRefuses(t *testing.T) {
	deep := Value(String("x"))
	for range MaxDepth + 1 {
		deep = List{deep}
	}
	tests := []struct {
		name  string
		items []Item
	}{
		{"invalid field name", f("a b", Int(1))},
		{"field name true", f("true", Int(1))},
		{"invalid section kind", []Item{Section{Kind: "1"}}},
		{"invalid identifier", f("a", Ident("x y"))},
		{"identifier that reads as an integer", f("a", Ident("12"))},
		{"nil value", f("a", nil)},
		{"nil item", []Item{nil}},
		{"unknown operator", f("a", Relop{"~", Ident("x"), Ident("y")})},
		{"= is not an environment update", f("a", EnvBinding{Ident("x"), "=", String("y")})},
		{"comparison of non-atoms", f("a", Relop{"=", List{}, Ident("y")})},
		{"or under and needs a group", f("a", Logop{"&", Logop{"|", Ident("x"), Ident("y")}, Ident("z")})},
		{"right-nested or needs a group", f("a", Logop{"|", Ident("x"), Logop{"|", Ident("y"), Ident("z")}})},
		{"not of an and needs a group", f("a", Pfxop{"!", Logop{"&", Ident("x"), Ident("y")}})},
		{"option of a not needs a group", f("a", Option{Value: Pfxop{"!", Ident("x")}})},
		{"atom then prefix comparison reads as one comparison", f("a", List{Ident("x"), PrefixRelop{"=", Ident("y")}})},
		{"too deep", f("a", deep)},
	}
	for _, tt := range tests {
		if out, err := FormatOpamFile(tt.items); err == nil {
			t.Errorf("%s: FormatOpamFile = %q, want an error", tt.name, out)
		}
	}
}

func TestParseOpamFileErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"a: \"x", `f line 1, column 4: unterminated string`},
		{"a: \"\"\"x\"\"", `f line 1, column 4: unterminated string`},
		{"a: x\nb: (* x", `f line 2, column 4: unterminated comment`},
		{"a: \"\\q\"", `f line 1, column 5: illegal escape sequence "\q"`},
		{"a: \"\\256\"", `f line 1, column 5: illegal escape sequence`},
		{"a: \"\\x4\"", `f line 1, column 5: illegal escape sequence`},
		{"a: x\n  b: [1 2\n", `f line 2, column 6: "[" is not closed`},
		{"a: x\nb: (1 2]", `f line 2, column 8: expected a value or ")", found "]"`},
		{"s {\n  a: 1\n", `f line 1, column 3: section is not closed`},
		{"a: 1\n}", `f line 2, column 1: unexpected "}" outside a section`},
		{"a: \"x\" \"y\"", `f line 1, column 8: unexpected string "y" after a field value`},
		{"a:", `f line 1, column 3: expected a value after "a:", found end of file`},
		{"a: x &", `f line 1, column 7: expected a value after "&", found end of file`},
		{"a: x = [y]", `f line 1, column 8: expected a string, identifier, integer or boolean after "=", found "["`},
		{"a b", `f line 1, column 3: expected ":" or "{" after a, found identifier b`},
		{"s \"n\" x", `f line 1, column 7: expected "{" after section s "n"`},
		{"s \"\" {}", `f line 1, column 3: empty section name`},
		{"\"x\": 1", `f line 1, column 1: expected a field name, found string "x"`},
		{"a: $", `f line 1, column 4: unexpected character '$'`},
		{"a: \x01", `f line 1, column 4: unexpected byte 0x01`},
		{"a: x\rb: y", `f line 1, column 5: carriage return not followed by a newline`},
		{"a: _", `f line 1, column 4: invalid integer "_"`},
		{"a: 99999999999999999999", `f line 1, column 4: integer 99999999999999999999 is out of range`},
		{"a: x =:= y", `f line 1, column 6: "=:=" is not a valid environment update operator`},
		{"a: " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), `f line 1, column 68: nesting deeper than 64 levels`},
		{"a: x" + strings.Repeat(" & x", MaxDepth+1), `nesting deeper than 64 levels`},
		{"a: " + strings.Repeat("!", MaxDepth+1) + "x", `nesting deeper than 64 levels`},
		{strings.Repeat("s {", MaxDepth+1) + strings.Repeat("}", MaxDepth+1), `nesting deeper than 64 levels`},
	}
	for _, tt := range tests {
		_, err := ParseOpamFile("f", []byte(tt.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseOpamFile(%q) error = %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseOpamFile(%q) error = %q, want %q", tt.in, err, tt.want)
		}
	}
}

func TestMaxDepthAccepted(t *testing.T) {
	// Exactly MaxDepth levels parse and format back.
	in := "a: " + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	items, err := ParseOpamFile("f", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	checkOpamRoundTrip(t, items)
}

func TestValidIdent(t *testing.T) {
	for s, want := range map[string]bool{
		"name": true, "_:share": true, "a+b:installed": true, "x-foo": true, "1a": true, "-x": true,
		"_": false, "1": false, "-1": false, "true": false, "false": false, "": false,
		"a b": false, "a:": false, "a+": false, "a:b:c": false, "a.b": false,
	} {
		if got := validIdent(s); got != want {
			t.Errorf("validIdent(%q) = %v, want %v", s, got, want)
		}
	}
}
