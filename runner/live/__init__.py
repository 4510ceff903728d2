"""What a run is while it runs and what it gives at the end: its context and live state (``live``) and its one
results assembly (``assemble``), read by the console, the web UI, the live outputs and the Python API."""
