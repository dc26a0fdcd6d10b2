package rebuilder_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/buildledger/buildledger/rebuilder"
)

// Build a job, rebuild it from its record, and compare.
func Example() {
	tmp, err := os.MkdirTemp("", "rebuilder-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	spec := rebuilder.Spec{
		Job:             "hello",
		Script:          []byte("mkdir bin\necho \"hello, built at $SOURCE_DATE_EPOCH\" > bin/hello.txt\n"),
		SourceDateEpoch: 1700000000,
	}
	opts := rebuilder.Options{Root: filepath.Join(tmp, "root"), SkipSystem: true}
	first, err := rebuilder.Run(context.Background(), spec, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(first.Exec.Result)

	// A rebuild restores the recorded build-environment.
	recorded, err := rebuilder.InputsOf(first.Exec)
	if err != nil {
		log.Fatal(err)
	}
	rebuild, err := rebuilder.Run(context.Background(),
		rebuilder.Spec{Job: first.Exec.Job.Name, Script: []byte(first.Exec.Job.Script)},
		rebuilder.Options{Env: &recorded.Environment, SkipSystem: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rebuilder.DiffInputs(recorded, rebuild.Inputs).Empty())
	fmt.Println(rebuilder.Compare(rebuilder.ArtifactsOf(first.Exec), rebuild.Artifacts))
	// Output:
	// exited 0
	// true
	// reproducible: 1 file identical
}
