"""The distribution's version; every package re-exports it from here."""

__version__ = "0.1.0"
