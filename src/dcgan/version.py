"""The package version: one owner, read by the package, the CLI and exported files."""

__version__ = "0.1.0"
