"""Imagetron sandbox: local stand-ins for the third-party APIs Imagetron calls."""

from imagetron_sandbox.app import create_app
from imagetron_sandbox.faults.knobs import FaultKnobs
from imagetron_sandbox.settings import SandboxSettings

__all__ = ["FaultKnobs", "SandboxSettings", "create_app"]
