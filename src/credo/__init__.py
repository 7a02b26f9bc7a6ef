"""credo: run automation under Active Directory managed identities with no stored secret."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
