"""Developer tools that are not tests: the demo (``nox -s demo``) and the benchmarks (``nox -s bench``).

Both use the test helpers in tests/support (the S3 server, the kernel lock, the crashers); neither
runs under pytest, and nothing here asserts a time.
"""
