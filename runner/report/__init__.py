"""Reports made from the typed results (``runner.report.model.Results``): console, JSON, CSV, HTML, JUnit XML."""
