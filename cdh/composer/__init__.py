"""The composer: run by the kernel on the host for every crash.

Stdlib plus a few small compiled helpers (orjson, isal, zstandard), all
optional at run time. Never import the agent's dependencies from here.
"""
