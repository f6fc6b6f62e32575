"""The ``metricdepth`` command line: thin wrappers that parse, call the library and report."""

from .app import app, main

__all__ = ["app", "main"]
