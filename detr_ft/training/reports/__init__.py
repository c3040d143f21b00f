"""What a run tells its user: the start-up report, metrics.csv, results.png, prediction pictures, matching
health and the end-of-run summary."""
