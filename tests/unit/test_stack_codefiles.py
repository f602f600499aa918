"""The held process's executable mappings opened through map_files (cdh/stack/codefiles.py), over a
directory shaped like /proc/<pid>."""

from __future__ import annotations

import os

from cdh.stack.codefiles import MAX_ERRORS, close_code_files, open_code_files

MAPS = b"""\
00400000-00401000 r--p 00000000 08:02 11 /app/srv
00401000-00452000 r-xp 00001000 08:02 11 /app/srv
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 [heap]
7f1000000000-7f1000100000 r-xp 00028000 08:02 12 /usr/lib/libc.so.6
7f2000000000-7f2000001000 r-xp 00000000 00:00 0 [vdso]
7f3000000000-7f3000001000 r-xs 00000000 00:05 13 /dev/weird
7f4000000000-7f4000001000 r-xp 00000000 08:02 14 /usr/lib/gone.so (deleted)
garbage line
"""


def proc_dir(tmp_path, names):
    d = tmp_path / "proc"
    (d / "map_files").mkdir(parents=True)
    for name in names:
        (d / "map_files" / name).write_bytes(name.encode())
    os.mkfifo(d / "map_files" / "7f3000000000-7f3000001000")  # not a regular file: never read
    return os.open(d, os.O_RDONLY | os.O_DIRECTORY)


def test_executable_file_mappings_are_opened_by_their_range(tmp_path):
    dfd = proc_dir(tmp_path, ["401000-452000", "7f1000000000-7f1000100000"])
    try:
        files, errors = open_code_files(dfd, MAPS)
    finally:
        os.close(dfd)
    try:
        # map_files names carry no leading zeros; only executable mappings of files; not the fifo
        assert [(f.path, f.start, f.end, f.offset) for f in files] == [
            ("/app/srv", 0x401000, 0x452000, 0x1000),
            ("/usr/lib/libc.so.6", 0x7F1000000000, 0x7F1000100000, 0x28000)]
        assert [os.pread(f.fd, 64, 0) for f in files] == [b"401000-452000", b"7f1000000000-7f1000100000"]
        assert errors == ["map_files/7f4000000000-7f4000001000 (/usr/lib/gone.so (deleted)): "
                          "No such file or directory"]
    finally:
        close_code_files(files)


def test_errors_are_capped(tmp_path):
    maps = b"".join(b"%x-%x r-xp 00000000 08:02 1 /lib/l%d.so\n" % (i << 20, (i << 20) + 4096, i)
                    for i in range(1, 40))
    dfd = proc_dir(tmp_path, [])
    try:
        files, errors = open_code_files(dfd, maps)
    finally:
        os.close(dfd)
    assert files == [] and len(errors) == MAX_ERRORS + 1 and errors[-1].startswith("34 more")
