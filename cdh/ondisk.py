"""What cdh keeps on a node's disk, named once: the composer writes these files; the agent, ``cdh
doctor`` and the bucket tools read them. This module is that contract (as cdh/keys.py is for object
keys), and its test is the contract's test: every writer and reader imports the names from here.

- HOST_DIR (:class:`HostDir`): the composer ``cdc`` and its Python runtime, the composer's settings,
  log and rate-limit state, crictl's config, the sysctl backups; ``state/``, the agent's own.
- CORE_DIR: ``.<name>.zip.part`` while a composer writes it (under its exclusive flock), then
  ``<name>.zip``, never partial (:func:`is_finished_zip`); ``.<name>.zip.age`` while the agent
  uploads an encrypted copy of it (:func:`staged_name`, under the agent's flock; cdh/agent/staging.py).
- The zip: entries named after it, ``<name>`` + a suffix below; ``<name>-dump-info.json`` holds
  :data:`DUMP_INFO_FIELDS` (:func:`read_dump_info` reads it back).
- EVENT_DIR: ``<uuid>-event.json``, one per finished zip (``CDH_CORE_EVENTS``).

Stdlib only and cheap to import: the composer loads it for every crash (``json`` and ``zipfile``
are imported by :func:`read_dump_info` alone, which the composer never calls, and the patterns
the readers match are compiled on first use, by ``re``'s cache, never at import).
"""

from __future__ import annotations

import os
import re

# ---------------------------------------------------------------- HOST_DIR

COMPOSER = "cdc"                       # the zipapp; its first line runs the bundled Python
COMPOSER_ENV = "composer.env"          # the composer's settings, written by the agent
COMPOSER_LOG = "composer.log"          # JSON lines; rotated once, to composer.log.1
ROTATED_SUFFIX = ".1"
STATE = "state"                        # the agent's own state: all it writes in HOST_DIR outside CORE_DIR
                                       # and EVENT_DIR (the DaemonSet mounts HOST_DIR read-only but these)
LOG_POSITION = "composer-log.position"  # in STATE: how far the agent has relayed the composer's log
LEGACY_LOG_POSITION = ".composer-log.position"  # in HOST_DIR, where agents before STATE kept it: read once
RATE_LIMIT_STATE = "ratelimit.json"    # CDH_RATE_LIMIT: capture times per container
CRICTL_CONFIG = "crictl.yaml"          # CDH_DEPLOY_CRICTL_CONFIG
BACKUP_SUFFIX = ".bak"                 # <sysctl leaf>.bak: the value before cdh set it
RUNTIMES = "runtime"                   # runtime/<id>/: the bundled Python, one directory per build
RUNTIME_MANIFEST = "runtime.json"      # in a runtime: its id, files and the composer's part
RUNTIME_LOCK = "lock"                  # in a runtime: every composer holds it shared while it runs
# The kernel reads at most this much of cdc's first line: 256 bytes since Linux 5.1
# (BINPRM_BUF_SIZE), 128 before, where a longer line is cut without an error.
SHEBANG_MAX_NEW, SHEBANG_MAX_OLD = 256, 128


def _in_host_dir(name: str) -> property:
    return property(lambda host_dir: os.path.join(host_dir.path, name))


class HostDir:
    """Paths inside HOST_DIR."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    composer = _in_host_dir(COMPOSER)
    composer_env = _in_host_dir(COMPOSER_ENV)
    composer_log = _in_host_dir(COMPOSER_LOG)
    rotated_log = _in_host_dir(COMPOSER_LOG + ROTATED_SUFFIX)
    state = _in_host_dir(STATE)
    legacy_log_position = _in_host_dir(LEGACY_LOG_POSITION)

    @property
    def log_position(self) -> str:
        return os.path.join(self.path, STATE, LOG_POSITION)
    rate_limit_state = _in_host_dir(RATE_LIMIT_STATE)
    crictl_config = _in_host_dir(CRICTL_CONFIG)
    runtimes = _in_host_dir(RUNTIMES)

    def backup(self, sysctl: str) -> str:
        """``kernel.core_pattern`` → ``HOST_DIR/core_pattern.bak``."""
        return os.path.join(self.path, sysctl.rsplit(".", 1)[-1] + BACKUP_SUFFIX)

    def runtime_id(self, first_line: str) -> str | None:
        """The runtime cdc's first line (``#!HOST_DIR/runtime/<id>/lib/ld.so ...``) runs on, or None
        (a development launcher, or no ``#!`` line)."""
        prefix = "#!" + self.runtimes + os.sep
        return first_line[len(prefix):].split("/", 1)[0] if first_line.startswith(prefix) else None


# ---------------------------------------------------------------- CORE_DIR

ZIP_SUFFIX = ".zip"
PART_PREFIX, PART_SUFFIX = ".", ".zip.part"


def zip_name(name: str) -> str:
    return name + ZIP_SUFFIX


def part_name(name: str) -> str:
    """``.<name>.zip.part``: hidden, so nothing that looks for ``*.zip`` takes it."""
    return PART_PREFIX + name + PART_SUFFIX


def is_finished_zip(filename: str) -> bool:
    """A finished zip's name: ``*.zip``, not hidden (``.<name>.zip.part`` is in progress)."""
    return filename.endswith(ZIP_SUFFIX) and not filename.startswith(".")


def is_part(filename: str) -> bool:
    """``.<name>.zip.part``: a zip being written (or left by a composer that died)."""
    return (filename.startswith(PART_PREFIX) and filename.endswith(PART_SUFFIX)
            and len(filename) > len(PART_SUFFIX) + 1)


def zip_name_of_part(filename: str) -> str:
    return zip_name(filename[len(PART_PREFIX):-len(PART_SUFFIX)])


STAGED_PREFIX, STAGED_SUFFIX = ".", ".zip.age"


def staged_name(zip_filename: str) -> str:
    """``.<name>.zip.age``: the encrypted copy of ``<name>.zip`` that the agent uploads (hidden)."""
    return STAGED_PREFIX + zip_filename + ".age"


def is_staged(filename: str) -> bool:
    """``.<name>.zip.age``: an encrypted copy being uploaded (or left by an agent that died)."""
    return (filename.startswith(STAGED_PREFIX) and filename.endswith(STAGED_SUFFIX)
            and len(filename) > len(STAGED_SUFFIX) + 1)


# ---------------------------------------------------------------- the zip's entries: <name> + suffix

CORE = ".core"                          # the core (deflate, stored or zstd)
DUMP_INFO = "-dump-info.json"           # DUMP_INFO_FIELDS; written last
POD_INFO = "-pod-info.json"             # the `crictl pods` item of the pod
RUNTIME_INFO = "-runtime-info.json"     # `crictl inspectp`
PS_INFO = "-ps-info.json"               # `crictl ps -a -p <pod>`
PROC_DIR = "-proc"                      # <name>-proc/<file>: the crasher's /proc files
CONTAINER_PROC_FILES = ("auxv", "cmdline", "environ", "maps", "status")  # <name>-<i>-proc/ (IBM's)


def log_entry(i: int) -> str:
    """Container *i*'s log tail."""
    return f"-{i}.log"


def image_info_entry(i: int) -> str:
    """Container *i*'s image item (`crictl inspecti`)."""
    return f"-{i}-image-info.json"


def container_proc_dir(i: int) -> str:
    """Container *i*'s main process's /proc files (CDH_CONTAINER_PROC_FILES, IBM's proc info)."""
    return f"-{i}-proc"


def container_index(entry: str) -> int | None:
    """*i* of a ``...-<i>.log`` or ``...-<i>-image-info.json`` entry, else None."""
    m = re.search(r"-(\d+)\.log$", entry) or re.search(r"-(\d+)-image-info\.json$", entry)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- dump-info

IBM_FIELDS = ("uuid", "dump_file", "timestamp", "hostname", "exe", "real_pid", "signal",
              "node_hostname", "path")
# IBM's nine are strings as the kernel gave them (`path` keeps its '!'); the typed values are cdh's:
# pid (%p), signal_number (%s), timestamp_s (%t, or the composer's clock), executable (%E with '/').
CDH_FIELDS = ("pid", "signal_number", "timestamp_s", "executable",
              "host_pid", "namespace", "podname", "pod_uid", "container", "container_id",
              "restart_count", "pod_id", "image", "image_digest", "core_size", "compression",
              "truncated", "truncated_reason", "pod_found_by", "metadata_source", "metadata_errors",
              "cdh_version", "signature", "top_frame", "stack")
DUMP_INFO_FIELDS = IBM_FIELDS + CDH_FIELDS   # in this order
# dump-info's ``stack`` (cdh/stack/trace.py writes it; null when CDH_STACK_TRACE is off): versions,
# the tokens the signature hashes, the threads (the crashing one first) with their frames, the
# build id of each module named in a frame ({path: build id or null}), what went wrong, the time.
STACK_FIELDS = ("version", "signature_version", "signature_frames", "threads", "modules", "errors",
                "seconds")
THREAD_FIELDS = ("tid", "crashed", "stopped", "frames")
# A frame: pc and how it was found (first, cfi, fp, sigcontext, ra-at-sp, lr); the module's path
# and the link-time offset (addr2line's input) when a file maps the pc; the function when a symbol
# table names it; signal_frame for a signal trampoline. Absent keys are unknown.
FRAME_FIELDS = ("pc", "how", "module", "offset", "function", "function_offset", "signal_frame")
MAX_DUMP_INFO_BYTES = 1 << 20  # dump-info is a few hundred bytes; a bigger entry is refused (zip bomb)


# IBM's composer wrote dump-info by hand, its values unescaped (a '"' in %e made it invalid JSON).
_IBM_DUMP_INFO = ('{"uuid":"(?P<uuid>.*?)", "dump_file":"(?P<dump_file>.*?)", '
                  '"timestamp": "(?P<timestamp>.*?)",'
                  r'\s*"hostname": "(?P<hostname>.*?)", "exe": "(?P<exe>.*?)", '
                  '"real_pid": "(?P<real_pid>.*?)", "signal": "(?P<signal>.*?)", '
                  '"node_hostname": "(?P<node_hostname>.*?)", '
                  r'"path": "(?P<path>.*)" \}\s*')


def _ibm_hand_written(data: bytes) -> dict:
    """The nine fields of a dump-info IBM's composer wrote that is not valid JSON (zips IBM left on
    a node being taken over); ValueError when it is not that either."""
    m = re.fullmatch(_IBM_DUMP_INFO, data.decode("utf-8", "replace"), re.DOTALL)
    if m is None:
        raise ValueError("dump-info is not JSON")
    return m.groupdict()


def dump_int(info: dict, typed: str, ibm: str) -> int | None:
    """A number of the crash from a dump-info: cdh's typed field (``signal_number``), else IBM's
    string (``signal``: IBM's zips, and cdh's before the typed fields, where it was an int)."""
    v = info.get(typed)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    v = info.get(ibm)
    if isinstance(v, bool):
        return None
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None


def dump_executable(info: dict) -> str | None:
    """The crashed executable's path: cdh's ``executable``, else IBM's ``path`` with '/' for '!'."""
    v = info.get("executable")
    if isinstance(v, str) and v:
        return v
    v = info.get("path")
    return v.replace("!", "/") if isinstance(v, str) and v else None


class DumpInfoError(ValueError):
    """The zip cannot be read or has no usable dump-info: it is reported and left in place."""


def read_dump_info(fileobj) -> dict:
    """The dump-info of an open zip file (blocking: call it in a thread)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(fileobj) as zf:
            found = [i for i in zf.infolist() if i.filename.endswith(DUMP_INFO)]
            if len(found) != 1:
                raise DumpInfoError(f"expected one *{DUMP_INFO} entry, found {len(found)}")
            if found[0].file_size > MAX_DUMP_INFO_BYTES:
                raise DumpInfoError(f"{found[0].filename} is {found[0].file_size} bytes, too big")
            data = zf.read(found[0])
        try:
            info = json.loads(data)
        except ValueError:
            info = _ibm_hand_written(data)  # IBM's composer did not escape its values
    except DumpInfoError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as err:
        raise DumpInfoError(f"not a readable zip: {err}") from None
    if not isinstance(info, dict):
        raise DumpInfoError("dump-info is not a JSON object")
    return info


# ---------------------------------------------------------------- EVENT_DIR

EVENT_SUFFIX = "-event.json"


def event_file_name(uuid: str) -> str:
    return f"{uuid}{EVENT_SUFFIX}"


def dir_mode(file_mode: int) -> int:
    """The mode of a directory holding files of ``file_mode`` (CORE_DIR for CDH_ZIP_FILE_MODE,
    EVENT_DIR for CDH_EVENT_FILE_MODE): 0700, opened (r-x) to the group and others that may read
    the files (0644 → 0755), so an uploader or sidecar of another user can list and read them."""
    mode = 0o700
    if file_mode & 0o040:
        mode |= 0o050
    if file_mode & 0o004:
        mode |= 0o005
    return mode


# ---------------------------------------------------------------- the default zip name, read back

# CDH_FILENAME_TEMPLATE's default (cdh/config/table.py), {uuid}-dump-{timestamp}-{hostname}-
# {exe_name}-{pid}-{signal}: what a zip's name, or an object key ending in it, says without its
# dump-info.
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_DEFAULT_NAME = (rf"(?P<uuid>{_UUID})-dump-(?P<timestamp>\d+)-(?P<host_exe>.*)"
                 r"-(?P<pid>\d+)-(?P<signal>\d+)\.zip$")


def is_uuid(text: str) -> bool:
    """A dump's uuid, as the default name starts with (``cdh get`` takes one for a key)."""
    return re.match(_UUID + "$", text) is not None


def parse_default_name(key: str) -> dict[str, str]:
    """What a default zip name says (uuid, timestamp, pid, signal), or {} for other names."""
    m = re.match(_DEFAULT_NAME, key.rsplit("/", 1)[-1])
    return {k: v for k, v in m.groupdict().items() if k != "host_exe"} if m else {}
