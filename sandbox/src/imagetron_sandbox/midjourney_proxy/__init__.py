"""A midjourney-proxy-compatible face of the sandbox (the original and the trueai-org fork)."""
