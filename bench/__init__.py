"""Benchmarks that time Kinema against reference implementations in the same process.

Run from the repository root: `python -m bench [--quick]`. Not part of the runtime package.
"""
