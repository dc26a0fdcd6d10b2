package ledger

// admit applies the rules for new events that are stricter than what
// events already in a log satisfy (validate): a rule added later must not
// make an existing log fail to replay, yet nothing new may break it.
// It returns an *InvalidEventError.
func admit(e Event) error {
	switch e := e.(type) {
	case *BuildRecorded:
		for _, a := range e.Artifacts {
			if err := CheckArtifactPath(a.Path); err != nil {
				return invalid(e.Kind(), "artifact: %v", err)
			}
		}
	case *AttestationRecorded:
		for _, s := range e.Subjects {
			if err := CheckArtifactPath(s.Name); err != nil {
				return invalid(e.Kind(), "subject: %v", err)
			}
		}
	}
	return nil
}
