"""Helpers shared by test suites: the crictl stub, a fake node, running the composer,
realistic dump zips, a real S3 server process and a fault proxy in front of it."""
