"""The composer as a process: crictl stub scenarios, deadline, disk full, selector, memory."""
