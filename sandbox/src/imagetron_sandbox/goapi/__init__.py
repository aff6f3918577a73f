"""goapi."""
