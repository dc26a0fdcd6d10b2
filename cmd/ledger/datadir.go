package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// node is an opened data directory.
type node struct {
	db     *badger.DB
	store  *cas.Store
	ledger *ledger.Ledger
	vkey   string
	origin string
}

func (n *node) Close() error {
	n.ledger.Close()
	return n.db.Close()
}

// withNode returns a cobra RunE that opens the data directory, runs fn and
// closes it again.
func withNode(g *globals, fn func(cmd *cobra.Command, n *node) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		n, err := openData(g)
		if err != nil {
			return err
		}
		defer n.Close()
		return fn(cmd, n)
	}
}

// openData opens (creating if needed) the data directory.
func openData(g *globals) (*node, error) {
	if err := os.MkdirAll(g.data, 0o700); err != nil {
		return nil, err
	}
	skey, vkey, err := loadOrCreateKey(g.data, g.origin)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("log key %s: %w", filepath.Join(g.data, "log.key"), err)
	}
	db, err := kv.Open(filepath.Join(g.data, "db"), kv.Options{})
	if err != nil {
		return nil, err
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		db.Close()
		return nil, err
	}
	l, err := ledger.Open(db, store, ledger.Config{Origin: signer.Name(), Signer: signer})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &node{db: db, store: store, ledger: l, vkey: vkey, origin: signer.Name()}, nil
}

// loadOrCreateKey reads DIR/log.key, or generates a key named origin.
func loadOrCreateKey(dir, origin string) (skey, vkey string, err error) {
	kp, vp := filepath.Join(dir, "log.key"), filepath.Join(dir, "log.pub")
	b, err := os.ReadFile(kp)
	if errors.Is(err, fs.ErrNotExist) {
		skey, vkey, err = ledger.GenerateLogKey(origin)
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(kp, []byte(skey+"\n"), 0o600); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(vp, []byte(vkey+"\n"), 0o644); err != nil {
			return "", "", err
		}
		return skey, vkey, nil
	}
	if err != nil {
		return "", "", err
	}
	skey = strings.TrimSpace(string(b))
	vb, err := os.ReadFile(vp)
	if err != nil {
		return "", "", fmt.Errorf("log key present but its public half is not: %w", err)
	}
	return skey, strings.TrimSpace(string(vb)), nil
}
