// Package schemas embeds the project's JSON Schemas (draft 2020-12) and
// compiles them with github.com/santhosh-tekuri/jsonschema/v6.
//
// event.json and event/*.json describe every ledger event kind; each
// schema's description states the canonical byte encoding that package
// ledger enforces on top of the schema. The golden events in
// ledger/event/testdata/events are checked against them (TestGoldenEvents).
package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.json event/*.json vmm/*.json
var files embed.FS

// FS returns the embedded schema files.
func FS() fs.FS { return files }

const base = "https://buildledger.dev/schemas/"

// Compile compiles the named schema (a path such as "event.json" or
// "event/build_recorded.json"), resolving references among the embedded
// files only.
func Compile(name string) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("schema %s: %w", p, err)
		}
		return c.AddResource(base+p, doc)
	})
	if err != nil {
		return nil, err
	}
	return c.Compile(base + name)
}

// compiled keeps each schema Validate compiled: compiling checks the
// schema against its meta-schema, which takes far longer than a
// validation.
var compiled sync.Map // name → *jsonschema.Schema

// Validate checks a JSON document against the named schema.
func Validate(name string, doc []byte) error {
	var s *jsonschema.Schema
	if c, ok := compiled.Load(name); ok {
		s = c.(*jsonschema.Schema)
	} else {
		var err error
		if s, err = Compile(name); err != nil {
			return err
		}
		compiled.Store(name, s)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(v)
}
