"""The stock agencies' rules, checked in one place for every service (`rules` for content,
`files` for the submission file, `lists` for the curated names)."""
