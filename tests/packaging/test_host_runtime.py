"""The composer on a node with no Python: HOST_DIR/cdc in an empty chroot, and upgrades in flight.

The chroot holds nothing but HOST_DIR (at the same path) and /proc; cdc runs with an empty
environment, cwd /, as the kernel runs it: no libc, no Python, no shell from the host.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
import zipfile

from cdh import ondisk
from cdh.agent import host, pyruntime
from cdh.config import load
from tests.support.packaging import agent_only

KERNEL_ARGS = ["-c=unlimited", "-e=crasher", "-p=4242", "-s=11", "-h=node", "-E=!bin!crasher"]


def install(host_dir, source, sysctl):
    """`cdh install` as the agent runs it, with the sysctls written to a fake /proc/sys."""
    settings = load([{"CDH_HOST_DIR": str(host_dir), "CDH_RUNTIME_DIR": str(source)}])
    host.install(settings, sysctl)
    return settings


def current(host_dir) -> str:
    with open(os.path.join(host_dir, "cdc"), "rb") as f:
        first = f.readline().decode()
    return first.split(" ")[0][2:].rsplit("/lib/", 1)[0]


def test_cdc_first_line_fits_every_kernel_with_a_short_host_dir(image_runtime, short_host_dir, fake_sysctl):
    install(short_host_dir, image_runtime, fake_sysctl)
    with open(os.path.join(short_host_dir, "cdc"), "rb") as f:
        assert len(f.readline()) <= ondisk.SHEBANG_MAX_OLD


def test_runtime_libraries_load_in_an_empty_chroot(image_runtime, short_host_dir, fake_sysctl, chroot):
    install(short_host_dir, image_runtime, fake_sysctl)
    rt = current(short_host_dir)
    code = ("import _socket, isal.isal_zlib, json, zstandard, zlib, fcntl, os, sys;"
            "data = b'core' * 1000;"
            "assert zlib.decompress(isal.isal_zlib.compress(data)) == data;"
            "z = zstandard.ZstdCompressor().compress(data);"
            "assert zstandard.ZstdDecompressor().decompress(z) == data;"
            "facts = {'env': dict(os.environ), 'cwd': os.getcwd(), 'exe': sys.executable};"
            "print(json.dumps(facts))")
    done = chroot([short_host_dir], [f"{rt}/lib/ld.so", f"{rt}/bin/python3", "-c", code])
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == {"env": {}, "cwd": "/", "exe": f"{rt}/bin/python3"}


def test_a_core_piped_into_cdc_comes_out_as_a_complete_zip(
        image_runtime, short_host_dir, fake_sysctl, chroot):
    settings = install(short_host_dir, image_runtime, fake_sysctl)
    core = os.urandom(1 << 16) * 16  # 1 MiB
    args = [f"{short_host_dir}/cdc", *KERNEL_ARGS, f"-P={os.getpid()}", f"-t={int(time.time())}"]
    done = chroot([short_host_dir], args, input=core)
    assert done.returncode == 0, done.stderr.decode()
    zips = [n for n in os.listdir(settings.core_dir) if n.endswith(".zip")]
    assert len(zips) == 1 and not [n for n in os.listdir(settings.core_dir) if n.endswith(".part")]
    with zipfile.ZipFile(os.path.join(settings.core_dir, zips[0])) as z:
        assert z.testzip() is None
        cores = [n for n in z.namelist() if n.endswith(".core")]
        assert len(cores) == 1 and z.read(cores[0]) == core
        info = json.loads(z.read(cores[0][: -len(".core")] + "-dump-info.json"))
    assert info["exe"] == "crasher" and str(info["real_pid"]) == "4242", info


def test_a_misspelt_setting_in_composer_env_costs_no_core(image_runtime, short_host_dir, fake_sysctl, chroot):
    """The error path of the settings loader (a name suggestion) runs on the host runtime too."""
    settings = install(short_host_dir, image_runtime, fake_sysctl)
    with open(os.path.join(short_host_dir, ondisk.COMPOSER_ENV), "a") as f:
        f.write("CDH_COMPRESION=zstd\n")
    args = [f"{short_host_dir}/cdc", *KERNEL_ARGS, f"-P={os.getpid()}", f"-t={int(time.time())}"]
    done = chroot([short_host_dir], args, input=b"core" * 1000)
    assert done.returncode == 0, done.stderr.decode()
    assert [n for n in os.listdir(settings.core_dir) if n.endswith(".zip")]


def test_the_composer_path_imports_what_the_host_part_holds_and_none_of_the_agents_stack(
        image_runtime, short_host_dir, fake_sysctl):
    install(short_host_dir, image_runtime, fake_sysctl)
    rt, cdc = current(short_host_dir), f"{short_host_dir}/cdc"
    args = [*KERNEL_ARGS, f"-P={os.getpid()}", "-t=1"]
    done = subprocess.run([f"{rt}/lib/ld.so", f"{rt}/bin/python3", "-X", "importtime", cdc, *args],
                          input=b"core", env={}, cwd="/", capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.decode().splitlines()
             if line.startswith("import time:") and not line.endswith("imported package")}
    assert {"cdh.composer.main", "_cdh_runtime"} <= names
    # One source of truth: the host part is what packaging/pyruntime.py measured the composer imports
    # (runtime.json), and a real run needs nothing more.
    with open(image_runtime / ondisk.RUNTIME_MANIFEST) as f:
        manifest = json.load(f)
    assert sorted(names - set(manifest["composer_modules"])) == []
    assert agent_only(names) == [] and agent_only(manifest["composer_modules"]) == []
    assert not names & {"typing", "dataclasses"}  # their import cost, paid by every crash otherwise
    # orjson is the agent's log encoder; the composer writes its lines with the stdlib's json.
    assert "orjson" not in manifest["composer_modules"]
    assert not [p for p in manifest["host_files"] if p.startswith("site-packages/orjson")]


def test_the_image_entrypoint_runs_from_the_runtime_alone(image_runtime, image_entry, chroot):
    rt, opt_cdh = str(image_runtime), os.path.dirname(image_entry)  # /opt/cdh/{runtime,cdh.pyz}
    done = chroot([opt_cdh], [image_entry, "--version"])  # ENTRYPOINT: executed through its #! line
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("cdh ")
    code = ("import ssl, uvloop, aiobotocore.session, botocore.session;"
            "ssl.create_default_context();"
            "botocore.session.get_session().create_client('s3', region_name='us-east-1',"
            " aws_access_key_id='k', aws_secret_access_key='s');"
            "print('ok')")
    done = chroot([opt_cdh], [f"{rt}/lib/ld.so", f"{rt}/bin/python3", "-c", code])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"ok\n"


def start_composer(host_dir):
    """A composer in flight: reading its core from a pipe that stays open until the test closes it."""
    args = [f"{host_dir}/cdc", *KERNEL_ARGS, f"-P={os.getpid()}", f"-t={int(time.time())}"]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={}, cwd="/")


def wait_locked(runtime_dir, deadline_s=30.0):
    fd = os.open(os.path.join(runtime_dir, "lock"), os.O_RDONLY)
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                return
            time.sleep(0.01)
        raise AssertionError(f"the composer never locked {runtime_dir}")
    finally:
        os.close(fd)


def test_upgrade_while_a_composer_runs_keeps_its_runtime_until_it_ends(
        image_runtime, short_host_dir, fake_sysctl, tmp_path):
    install(short_host_dir, image_runtime, fake_sysctl)
    old = current(short_host_dir)
    composer = start_composer(short_host_dir)
    try:
        wait_locked(old)
        new_source = tmp_path / "new-runtime"  # the next release: same files, another id
        shutil.copytree(image_runtime, new_source, symlinks=True)
        manifest = json.loads((new_source / "runtime.json").read_text())
        manifest["id"] = "0123456789ab"
        (new_source / "runtime.json").write_text(json.dumps(manifest))
        install(short_host_dir, new_source, fake_sysctl)
        assert current(short_host_dir).endswith("/0123456789ab")
        done = pyruntime.prune(short_host_dir, keep="0123456789ab", grace_s=0)
        assert os.path.isdir(old) and "holds its lock" in " ".join(done)
        _out, err = composer.communicate(os.urandom(1 << 20), timeout=120)
        assert composer.returncode == 0, err.decode()
    finally:
        composer.kill()
        composer.wait()
    done = pyruntime.prune(short_host_dir, keep="0123456789ab", grace_s=0)
    assert not os.path.exists(old), done
