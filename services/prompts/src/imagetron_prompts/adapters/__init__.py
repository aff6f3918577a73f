"""PostgreSQL storage of prompts, and the service's unit of work."""
