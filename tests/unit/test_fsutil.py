"""cdh/fsutil.py: how cdh reaches the directories it writes in and the files it trusts (chase()-style)."""

from __future__ import annotations

import os
import stat

import pytest

from cdh import fsutil
from tests.support.require import require

NOBODY = 65534


def _mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture
def root_only():
    require(os.geteuid() == 0, "ownership checks need root (chown)")


def test_a_missing_directory_is_made_0700_with_0755_parents(tmp_path):
    old = os.umask(0o077)
    try:
        fsutil.check_dir(str(tmp_path / "a" / "b"), create=True)
    finally:
        os.umask(old)
    assert (_mode(tmp_path / "a"), _mode(tmp_path / "a" / "b")) == (0o755, 0o700)


def test_an_existing_directory_is_checked_never_chmodded(tmp_path):
    d = tmp_path / "cores"
    d.mkdir(mode=0o755)
    fsutil.check_dir(str(d), create=True)
    assert _mode(d) == 0o755
    os.chmod(d, 0o1777)
    with pytest.raises(fsutil.UnsafePath, match=r"cores is writable by everyone \(mode 1777\)"):
        fsutil.check_dir(str(d), create=True)
    assert _mode(d) == 0o1777


def test_a_sticky_directory_is_passed_through_but_never_written_in(tmp_path):
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    fsutil.check_dir(str(shared / "cores"), create=True)  # /tmp/cores: others cannot rename it
    os.chmod(shared, 0o0777)
    with pytest.raises(fsutil.UnsafePath, match=r"at 'tmp'.*writable by everyone"):
        fsutil.check_dir(str(shared / "cores"))


def test_the_directory_written_in_is_never_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(fsutil.UnsafePath, match="is a symlink"):
        fsutil.check_dir(str(tmp_path / "link"), create=True)
    assert os.listdir(tmp_path / "real") == []
    fsutil.check_dir(str(tmp_path / "link" / "cores"), create=True)  # a root link above: RHCOS /mnt
    assert os.listdir(tmp_path / "real") == ["cores"]


def test_foreign_owners_are_refused(tmp_path, root_only):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(fsutil.UnsafePath, match="is owned by uid 65534"):
        fsutil.check_dir(str(theirs))
    with pytest.raises(fsutil.UnsafePath, match=r"at 'theirs'.*owned by uid 65534"):
        fsutil.check_dir(str(theirs / "cores"), create=True)
    assert not (theirs / "cores").exists()
    (tmp_path / "link").symlink_to(tmp_path)
    os.chown(tmp_path / "link", NOBODY, NOBODY, follow_symlinks=False)
    with pytest.raises(fsutil.UnsafePath, match="symlink owned by uid 65534"):
        fsutil.check_dir(str(tmp_path / "link" / "x"), create=True)


def test_open_regular_refuses_what_is_not_a_plain_file_of_ours(tmp_path, root_only):
    dfd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.mkfifo(tmp_path / "fifo")
        reader = os.open(tmp_path / "fifo", os.O_RDONLY | os.O_NONBLOCK)  # so O_WRONLY would not fail
        with pytest.raises(fsutil.UnsafePath, match="not a regular file"):
            fsutil.open_regular("fifo", os.O_WRONLY, dir_fd=dfd)
        os.close(reader)
        (tmp_path / "f").write_text("x")
        os.link(tmp_path / "f", tmp_path / "f2")
        with pytest.raises(fsutil.UnsafePath, match="2 hard links"):
            fsutil.open_regular("f", os.O_RDONLY, dir_fd=dfd)
        (tmp_path / "g").write_text("x")
        os.chown(tmp_path / "g", NOBODY, NOBODY)
        with pytest.raises(fsutil.UnsafePath, match="owned by uid 65534"):
            fsutil.open_regular("g", os.O_RDONLY, dir_fd=dfd)
        (tmp_path / "l").symlink_to(tmp_path / "g")
        with pytest.raises(OSError):
            fsutil.open_regular("l", os.O_RDONLY, dir_fd=dfd)
        os.close(fsutil.open_regular("new", os.O_WRONLY | os.O_CREAT, dir_fd=dfd))
        assert _mode(tmp_path / "new") == 0o600 & ~_umask()
    finally:
        os.close(dfd)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_untrusted_executable(tmp_path, root_only):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(mode=0o755)
    exe = bin_dir / "crictl"
    exe.write_text("#!/bin/sh\n")
    os.chmod(exe, 0o755)
    assert fsutil.untrusted_executable(str(exe)) is None
    (bin_dir / "via-link").symlink_to("crictl")  # k3s: crictl is a link to the k3s binary
    assert fsutil.untrusted_executable(str(bin_dir / "via-link")) is None
    assert "No such file" in fsutil.untrusted_executable(str(bin_dir / "missing"))
    os.chmod(exe, 0o775)
    assert "writable by others" in fsutil.untrusted_executable(str(exe))
    os.chmod(exe, 0o755)
    os.chown(exe, NOBODY, NOBODY)
    assert "owned by uid 65534" in fsutil.untrusted_executable(str(exe))
    os.chown(exe, 0, 0)
    os.chmod(bin_dir, 0o777)
    assert "writable by everyone" in fsutil.untrusted_executable(str(exe))
    os.chmod(bin_dir, 0o1777)  # sticky or not: the directory a program is run from is root's alone
    assert "writable by everyone" in fsutil.untrusted_executable(str(exe))
