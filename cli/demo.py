"""`python -m kinema demo`: prompt -> mp4 with the tiny built-in demo model (see kinema.demo.run)."""
from ..demo.run import add_parser

__all__ = ["add_parser"]
