"""Imagetron's images service: generation tasks, provider calls, and every image kept in S3."""
