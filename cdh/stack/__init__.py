"""The stack trace of a crash and its signature (README "Stack traces and signatures").

Stdlib only, cheap to import: the composer runs it for every crash, the tools read what it wrote.
In the order a crash goes through it:

- ``tap``       while the process is held: the core's head and stack windows, kept as the core
                streams by; what the stream lacked, read from ``/proc/<pid>/mem``
- ``codefiles`` while the process is held: its executable mappings opened via ``map_files``
- ``trace``     after release: every thread unwound, functions named, the crash signed ->
                dump-info's ``stack`` (cdh/ondisk.py), within a time budget
- ``addrspace`` the process as the unwinder sees it: kept stack bytes, mapped modules
- ``unwind``    one thread: CFI, else frame pointers; signal trampolines; function names
- ``cfi``       ``.eh_frame_hdr``/``.eh_frame`` and ``.debug_frame``: pc -> the caller's registers
- ``dwarf``     LEB128, pointer encodings, DWARF expressions
- ``elffile``   one mapped ELF file through ``pread``: segments, build id, symbols
- ``signature`` the normal form of a trace and its hash, versioned
- ``offline``   the same from a core file and the files at their paths (tests)

The core's notes (threads, registers, siginfo) are read by cdh/elfcore.py, shared with
``cdh inspect``. The composer's side, which decides when each step runs, is
cdh/composer/stacktrace.py.
"""
