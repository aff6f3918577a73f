"""The service layer: one handler per command, query and job; commits only via the unit of work."""
