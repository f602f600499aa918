"""Test helpers reused across suites: realistic zips, a real S3 server process, a fault proxy."""
