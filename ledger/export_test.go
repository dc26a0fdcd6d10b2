package ledger

// PurgeHashCache empties the reverse lookup cache, so that a test's next
// lookup reads the store.
func (l *Ledger) PurgeHashCache() { l.hashes.Purge() }
