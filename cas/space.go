package cas

// checkSpace asks Options.CheckSpace whether a transaction may be
// committed. badger writes through memory maps of pre-sized files, so on a
// full disk a commit is not an error but a SIGBUS that kills the process:
// callers (cmd/ledger with internal/diskspace) refuse writes while free
// space is below a reserve instead.
func (s *Store) checkSpace() error {
	if s.o.CheckSpace == nil {
		return nil
	}
	return s.o.CheckSpace()
}
