package orb_test

import (
	"fmt"
	"log"

	"github.com/buildledger/buildledger/ledger/orb"
)

func ExampleParseSwitch() {
	s, err := orb.ParseSwitch([]byte(`opam-version: "2.0"
compiler: ["ocaml.4.14.2" "ocaml-base-compiler.4.14.2"]
roots: ["ocaml-base-compiler.4.14.2" "unipi.dev"]
installed: ["ocaml.4.14.2" "ocaml-base-compiler.4.14.2" "unipi.dev"]
pinned: "unipi.dev"
package "unipi" {
  version: "dev"
  x-mirage-opam-lock-location: "mirage/unipi-hvt.opam.locked"
  url {
    src: "git+https://github.com/robur-coop/unipi.git#6074dce1118813830d71939b53182e4e349d9872"
  }
}
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("roots:", s.Roots)
	o, _ := s.Overlay("unipi")
	fmt.Println("unipi", o.Version(), "from", o.URL())
	for _, x := range o.Extensions() {
		fmt.Println(x.Name, orb.FormatValue(x.Value))
	}

	_, err = orb.ParseSwitch([]byte("opam-version: \"2.0\"\ninstalled: [\n  \"ocaml\"\n]\n"))
	fmt.Println(err)
	// Output:
	// roots: [ocaml-base-compiler.4.14.2 unipi.dev]
	// unipi dev from git+https://github.com/robur-coop/unipi.git#6074dce1118813830d71939b53182e4e349d9872
	// x-mirage-opam-lock-location "mirage/unipi-hvt.opam.locked"
	// opam-switch line 3, column 3: installed: "ocaml" is not NAME.VERSION: no "."
}

func ExampleDiffSwitches() {
	left, err := orb.ParseSwitch([]byte(`opam-version: "2.0"
installed: ["dune.3.16.0" "fmt.0.9.0" "unipi.dev"]
package "unipi" {
  version: "dev"
  url { src: "git+https://github.com/robur-coop/unipi.git#6074dce1118813830d71939b53182e4e349d9872" }
}
`))
	if err != nil {
		log.Fatal(err)
	}
	right, err := orb.ParseSwitch([]byte(`opam-version: "2.0"
installed: ["dune.3.16.1" "logs.0.7.0" "unipi.dev"]
package "unipi" {
  version: "dev"
  url { src: "git+https://github.com/robur-coop/unipi.git#9e7c6be9ff907a76cc0b57aaf89691052be1ceb3" }
}
`))
	if err != nil {
		log.Fatal(err)
	}
	d := orb.DiffSwitches(left, right)
	fmt.Println("removed:", d.Removed)
	fmt.Println("added:", d.Added)
	for _, c := range d.VersionChanged {
		fmt.Println("changed:", c.Name, c.Old, "->", c.New)
	}
	for _, o := range d.OpamFileChanged {
		for _, c := range o.Changes {
			fmt.Printf("opam file of %s.%s, %s:\n-%s\n+%s\n", o.Name, o.Version, c.Name, c.Old, c.New)
		}
	}
	// Output:
	// removed: [fmt.0.9.0]
	// added: [logs.0.7.0]
	// changed: dune 3.16.0 -> 3.16.1
	// opam file of unipi.dev, url:
	// -url {
	//   src: "git+https://github.com/robur-coop/unipi.git#6074dce1118813830d71939b53182e4e349d9872"
	// }
	// +url {
	//   src: "git+https://github.com/robur-coop/unipi.git#9e7c6be9ff907a76cc0b57aaf89691052be1ceb3"
	// }
}
