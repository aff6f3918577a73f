"""Imagetron prompts service: prompts, their manual status and generation state (schema `prompts`).

Layers: `domain` (rules), `app` (handlers and ports), `adapters` (PostgreSQL), `entrypoints`
(NATS), `bootstrap` (wiring). See docs/service-anatomy.md.
"""
