"""The package's version, in a module of its own: the package root re-exports it, and a module
inside the package imports it from here (reading it from the root would import everything)."""
__version__ = "0.1.0"
