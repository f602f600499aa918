"""From bucket to debugger: ``cdh ls``, ``cdh get`` and ``cdh inspect``.

- ``bucket``   list dumps from object metadata and key prefixes (``cdh ls``)
- ``fetch``    find one dump by key or uuid, download, verify, unpack (``cdh get``)
- ``dumpzip``  read a dump zip or its unpacked directory: entries by role, zstd, CRCs
- ``elfcore``  the core's ELF notes: threads, registers, signal info, mapped files
- ``buildid``  GNU build ids of the mapped ELF files, read from the core's memory
- ``report``   the ``cdh inspect`` summary (text or JSON) and the debugger command lines

Everything here runs on a developer's laptop as well as in a pod; nothing is
imported by the composer.
"""
