"""Claimdesk benchmarks: run the real `claimdesk serve` on loopback and measure it from outside.

`python -m bench --help` (or `make bench`) runs them; see bench/README.md.
"""
