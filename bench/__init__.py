"""Benchmarks that time Kinema against reference implementations in the same process.

Run from the repository root: `python -m bench [--quick]`. Not part of the runtime package.
"""
import os
import sys

# `python -m bench` puts the repository root first on sys.path, and the root is the package
# itself: its kernels/ folder would shadow the hub package `kernels` that transformers >= 5.25
# imports (the references import transformers). The root goes last, where `bench` still resolves.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_AT_ROOT = [p for p in sys.path if os.path.abspath(p or os.curdir) == _ROOT]
sys.path[:] = [p for p in sys.path if p not in _AT_ROOT] + _AT_ROOT
