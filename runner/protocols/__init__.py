"""Protocols besides HTTP/1.1 that scenarios declare in YAML (their IO, and how their steps are compiled)."""
