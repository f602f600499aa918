"""Helpers shared by test suites: the crictl stub, a fake node, running the composer."""
