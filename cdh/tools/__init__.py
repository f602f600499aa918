"""From bucket to debugger: ``cdh ls``, ``cdh get`` and ``cdh inspect``; and ``cdh migrate``.

- ``commands`` the three subcommands' arguments and runners (imported by cdh.cli)
- ``bucket``   list dumps from object metadata (``cdh ls``); cdh/keys.py narrows the listing prefix
- ``fetch``    find one dump by key or uuid, download, verify (``cdh get``)
- ``dumpzip``  read a dump zip or its unpacked directory: entries by role, zstd, bounded reads
- ``unpack``   unpack a downloaded zip (``cdh get``): checked layout, size ceiling, CRCs, private files
- ``buildid``  GNU build ids of the mapped ELF files, read from the core's memory
- ``summary``  what ``cdh inspect`` reports, as data (``--json``); ``render`` makes it text
- ``debugger`` the gdb / lldb / debuginfod command lines
- ``timespec``, ``fmt``, ``progress``: ``--since``; what reaches the terminal (``fmt.shown``), sizes and
  tables; the download's progress line
- ``migrate``  ``cdh migrate``: an IBM Core Dump Handler installation (Helm values) as a cdh overlay;
  ``ibmchart`` what IBM's chart makes of its values

What they share with the agent lives above both: the zip's names (cdh/ondisk.py), object keys
(cdh/keys.py), the destination and its store (cdh/destination.py, cdh/store/), signal names
(cdh/signals.py); with the composer, the core's notes (cdh/elfcore.py) and the stack trace's
signature (cdh/stack/).
Everything here runs on a developer's laptop as well as in a pod; the composer and the agent
import none of it.
"""
