"""The service layer: one handler per command, query and event."""
