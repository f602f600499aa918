"""The agent: host setup, intake and verified upload.

Importing this package must stay cheap: ``cdh install`` uses ``cdh.agent.host``
(stdlib only); the asyncio stack is imported by ``cdh.agent.main`` alone.
"""
