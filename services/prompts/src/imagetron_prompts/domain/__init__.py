"""The prompt and the rules of its life cycle; plain Python."""
