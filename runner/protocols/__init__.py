"""Protocols other than HTTP/1.1, declared in the scenario like its requests."""
