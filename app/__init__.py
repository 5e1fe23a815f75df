"""Claimdesk: a fact-verification workflow service."""

__version__ = "0.1.0"
