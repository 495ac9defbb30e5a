"""The `vairo-sms` command line (the `cli` extra); the SDK itself never imports this package."""

from .main import cli

__all__ = ["cli"]
