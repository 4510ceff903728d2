"""Reports made from the results dict (``runner.report.results``): console, JSON, CSV, HTML, JUnit XML."""
