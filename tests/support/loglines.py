"""A stand-in for the agent's log (cdh/agent/log.py) that keeps every line, for unit tests."""

from __future__ import annotations


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def __getattr__(self, level):
        return lambda event, **fields: self.lines.append((level, event, fields))

    def events(self, name: str) -> list[dict]:
        return [f for _, e, f in self.lines if e == name]
