"""lrun: declarative load testing."""

__version__ = "0.1.0"
