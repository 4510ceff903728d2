"""Resource monitoring during a run: this machine's processes (``local``, psutil) and the servers under test
(``remote``: node_exporter endpoints and Prometheus queries)."""
