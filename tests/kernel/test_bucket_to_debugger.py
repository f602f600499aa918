"""A real crash, all the way from the bucket to the debugger: ls → get by uuid → inspect → gdb."""

from __future__ import annotations

import json
import shlex

import pytest

from tests.support import dumpbuild
from tests.support.cli import run_cdh
from tests.support.crashes import compile_program, crash
from tests.support.gdb import core_facts, gdb_batch
from tests.support.s3server import put_dump

pytestmark = pytest.mark.kernel


def test_crash_to_bucket_to_debugger(kernel, s3_server, tmp_path):
    binary = compile_program("threads", tmp_path)
    core, pid, _ = crash(binary, tmp_path / "cores")
    zip_path, info = dumpbuild.build(tmp_path, core, compression="zstd", exe="threads", path=str(binary),
                                     namespace="shop", podname="cart-5d8f", node_hostname="node-7",
                                     image="", image_digest="")
    bucket = s3_server.create_bucket()
    env = s3_server.cdh_env(bucket, CDH_S3_KEY_PREFIX="{node}/{namespace}/")
    put_dump(s3_server.client(), bucket, f"node-7/shop/{zip_path.name}", zip_path, info)

    ls = run_cdh("ls", "--json", "--node", "node-7", "--namespace", "shop", "--since", "1h", env=env)
    assert ls.returncode == 0, ls.stderr
    [row] = json.loads(ls.stdout)
    assert (row["uuid"], row["pod"], row["signal_name"]) == (info["uuid"], "cart-5d8f", "SIGSEGV")

    got = run_cdh("get", row["uuid"], "-o", str(tmp_path / "dumps"), env=env)
    assert got.returncode == 0, got.stderr
    where = tmp_path / "dumps" / zip_path.stem
    assert (where / f"{zip_path.stem}.core").read_bytes() == core.read_bytes()

    shown = run_cdh("inspect", "--json", str(where))
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    gdb = core_facts(binary, core)
    assert summary["core"]["crashing_thread"]["tid"] == gdb["current_lwp"]
    assert sorted(summary["core"]["threads"]) == gdb["lwps"] and pid in gdb["lwps"]
    # The printed command opens the downloaded core and lands in the crashing function.
    argv = shlex.split(summary["debug"]["gdb"])
    assert argv[-1] == str(where / f"{zip_path.stem}.core")
    assert " crash () at " in gdb_batch(*argv[1:], "-ex", "bt")
