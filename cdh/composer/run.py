"""One composer run, step by step (the order is explained in cdh.composer.main)."""

from __future__ import annotations

import os
import resource
import time

from cdh import EXIT_DEADLINE, EXIT_FAILURE, EXIT_OK, ondisk
from cdh.composer import capture, dumpinfo, naming, podmeta, proc, ratelimit, space, zipstream
from cdh.composer.cri.sources import Link
from cdh.composer.output import PartFile, write_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.composer.stacktrace import StackCapture
    from cdh.stack.trace import Trace

PROC_ROOT_VAR = "CDH_TEST_PROC_ROOT"  # tests point /proc elsewhere (apport does the same)


class Run:
    """The context of one crash, passed down explicitly (no globals)."""

    def __init__(self, kargs, settings, log, uuid: str, deadline: float, started: float) -> None:
        self.kargs = kargs
        self.settings = settings
        self.log = log
        self.uuid = uuid
        self.deadline = deadline
        self.started = started
        self.node = os.uname().nodename
        self.proc_root = os.environ.get(PROC_ROOT_VAR) or "/proc"
        self.facts: proc.ProcFacts | None = None
        self.meta = podmeta.PodMeta(None)
        self.cri: Link | None = None
        self.errors: list[str] = []
        self.truncated: str | None = None
        self.core_size = 0
        self.write_failed = False
        self.stack: StackCapture | None = None   # from the hold to the release
        self.trace: Trace | None = None          # after the release
        self.compression = zipstream.available_method(settings.compression)
        if self.compression != settings.compression:
            self.errors.append(f"{settings.compression} is not available here (zstandard missing): "
                               f"{self.compression} used")

    # ------------------------------------------------------------ the steps

    def execute(self) -> int:
        try:
            return self._execute()
        finally:
            if self.facts is not None:
                self.facts.close()
            if self.stack is not None:
                self.stack.close()

    def _execute(self) -> int:
        s = self.settings
        self.facts = proc.read_facts(self.proc_root, self.kargs.host_pid, s.include_proc_environ,
                                     keep_open=s.stack_trace)
        if "environ" in self.facts.files:
            self.log.warning("compose.environ_included", setting="CDH_INCLUDE_PROC_ENVIRON",
                             note="the zip holds the process's environment, which may hold secrets; "
                                  "cdh's own S3 keys in it are redacted")
        self.meta = podmeta.PodMeta(self.facts.container_id)
        if not s.ignore_cri:
            self.cri = Link(s, self.deadline)  # opened on first use: the socket, else crictl
        if self._skipped_by_selector() or self._rate_limited():
            return EXIT_OK
        if s.stack_trace:  # only now: a skipped crash opens nothing (and with it off, nothing is imported)
            self._hold_for_stack()
        self.facts.close()
        name = self._name()
        try:
            part = PartFile(s.core_dir, name, self.uuid, s.zip_file_mode)
        except OSError as err:
            self.log.error("compose.failed", error=f"cannot create the zip in {s.core_dir}: {err}")
            return EXIT_FAILURE
        try:
            return self._write(part)
        except BaseException:
            part.discard()  # a bug: never leave half a zip behind
            raise
        finally:
            part.close()

    def _skipped_by_selector(self) -> bool:
        """Look the pod up before streaming when needed; True when the selector says skip."""
        selector = self.settings.pod_selector
        if self.cri is None or not (selector or naming.needs_pod(self.settings.filename_template)):
            return False
        podmeta.identify(self.cri, self.meta, self.kargs.hostname,
                         budget_end=time.monotonic() + self.settings.cri_timeout_s)
        if not selector:
            return False
        verdict = podmeta.selector_verdict(self.meta, selector)
        if verdict != "no-match":
            return False
        capture.release_stdin()
        self.log.info("compose.skipped", reason="pod does not match CDH_POD_SELECTOR",
                      selector="=".join(x for x in selector if x is not None),
                      namespace=self.meta.namespace, podname=self.meta.podname)
        return True

    def _rate_limited(self) -> bool:
        """True when CDH_RATE_LIMIT skips this crash: logged once, nothing written, stdin released."""
        k = self.kargs
        cgroup = (self.facts.files.get("cgroup") or b"").decode("utf-8", "replace") if self.facts else ""
        key = ratelimit.key_for(cgroup, self.meta.container_id, k.pathname, k.exe_name)
        why = ratelimit.check(self.settings.host_dir, key, self.settings.rate_limit)
        if why is None:
            return False
        capture.release_stdin()
        self.log.warning("compose.rate_limited", reason=why, key=key, container_id=self.meta.container_id,
                         action="core not written; the process was released")
        return True

    def _name(self) -> str:
        k, m = self.kargs, self.meta
        values = {"uuid": self.uuid, "timestamp": k.timestamp, "hostname": k.hostname,
                  "exe_name": k.exe_name, "pid": k.pid, "signal": k.signal,
                  "limit_size": k.limit_size, "pathname": k.pathname,
                  "directory": self.settings.core_dir, "namespace": m.namespace,
                  "podname": m.podname, "container": m.container}
        name, error = naming.render(self.settings.filename_template, values)
        if error:
            self.log.error("name.template", error=error)
        return name

    def _write(self, part: PartFile) -> int:
        zw = zipstream.ZipWriter(part.fd, mtime=self.kargs.timestamp)
        self._stream_core(zw, part)
        self._before_release()
        capture.release_stdin()  # the dying process may go now
        self._unwind()
        self._gather()
        if not self._finish_zip(zw, part):
            part.discard()
            return EXIT_FAILURE
        self._write_event(part.zip_name)
        self._log_done(part, zw)
        if self.write_failed:
            return EXIT_FAILURE  # the zip is valid and says why, but the core is not in it
        deadline_hit = self.truncated == "deadline" or (self.cri is not None and self.cri.deadline_hit)
        return EXIT_DEADLINE if deadline_hit else EXIT_OK

    def _stream_core(self, zw: zipstream.ZipWriter, part: PartFile) -> None:
        capture.enlarge_pipe()
        entry = zw.stream(part.name + ondisk.CORE, zipstream.METHODS[self.compression])
        # Blocks in flight on the writer thread will land too: counted as written.
        guard = space.SpaceGuard(self.settings, part.dfd, lambda: zw.offset, lambda: entry.pending)
        try:
            try:
                self.truncated = capture.stream(guard.wrap(entry), self.deadline,
                                                tap=self.stack.tap.feed if self.stack else None)
            except space.OutOfSpace as stop:  # a limit, before the disk is full: keep what we have
                self.truncated = stop.reason
                self.log.warning("core.space_limited", core_size=entry.size, **stop.fields,
                                 action="core cut short here, marked truncated; the process was released")
            self.core_size = entry.size
            entry.finish()
        except OSError as err:  # disk full while writing: drop the core entry, keep the rest
            self.core_size = entry.size
            self.truncated = f"write error: {err.strerror}"
            self.write_failed = True
            self.log.error("core.write_failed", error=str(err), core_size=self.core_size)
            entry.abort()

    def _hold_for_stack(self) -> None:
        """Still held, after the rate limit and the selector: the process's code files and memory."""
        from cdh.composer.stacktrace import StackCapture

        try:
            self.stack = StackCapture.hold(self.facts.dir_fd, self.facts.files.get("maps"))
        except Exception as err:
            self._stack_failed(err)

    def _before_release(self) -> None:
        """Still held, the stream ended: what it lacked, from the process's memory (microseconds)."""
        if self.stack is not None:
            try:
                self.stack.before_release()
            except Exception as err:
                self._stack_failed(err)

    def _unwind(self) -> None:
        """The stack trace and signature; the process is released, the runtime not yet asked."""
        if self.stack is not None:
            try:
                budget = max(0.0, min(self.settings.stack_budget_s, self.deadline - time.monotonic()))
                self.trace = self.stack.after_release(budget)
            except Exception as err:
                self._stack_failed(err)
            self.stack = None

    def _stack_failed(self, err: Exception) -> None:
        """A bug in the stack trace costs the trace, never the core."""
        self.log.error("stack.failed", error=repr(err), action="no stack trace in this zip")
        if self.stack is not None:
            self.stack.close()
            self.stack = None

    def _gather(self) -> None:
        if self.cri is None:
            return
        s = self.settings
        try:
            if s.minimal_zip:  # IBM's COMP_IGNORE_CRIO: the pod for dump-info and the event, no more
                if not self.meta.identified:
                    podmeta.identify(self.cri, self.meta, self.kargs.hostname)
                return
            podmeta.gather(self.cri, self.meta, self.kargs.hostname, s.log_lines, s.log_max_bytes,
                           running_only=not s.exited_containers,
                           proc_root=self.proc_root if s.container_proc_files else None)
        except Exception as err:  # a bug here must cost metadata, not the core
            self.meta.errors.append(f"internal error while gathering metadata: {err!r}")

    def _finish_zip(self, zw: zipstream.ZipWriter, part: PartFile) -> bool:
        """Small entries, dump-info last, central directory, publish. False: no zip at all."""
        method = zipstream.METHODS[self.compression]
        proc_files = self.facts.files if self.facts and self.settings.proc_files else {}
        entries = [] if self.settings.minimal_zip else dumpinfo.metadata_entries(part.name, self.meta,
                                                                                  proc_files)
        for entry_name, data in entries:
            try:
                zw.add(entry_name, data, method)
            except OSError as err:
                self.errors.append(f"{entry_name} not written: {err.strerror}")
                break  # the disk is full: keep room for dump-info and the directory
        try:
            zw.add(part.name + ondisk.DUMP_INFO, dumpinfo.dumps(self._dump_info(part.name)), method)
            zw.close()
            part.publish()
            return True
        except OSError as err:
            self.log.error("compose.failed", error=f"cannot finish the zip: {err}")
            return False

    def _dump_info(self, name: str) -> dict:
        errors = (self.facts.errors if self.facts else []) + self.meta.errors + self.errors
        return dumpinfo.dump_info(uuid=self.uuid, name=name, kargs=self.kargs, node=self.node,
                                  meta=self.meta, core_size=self.core_size,
                                  compression=self.compression, truncated_reason=self.truncated,
                                  errors=errors, trace=self.trace)

    def _write_event(self, zip_name: str | None) -> None:
        if not self.settings.core_events or not zip_name:
            return
        info = {"uuid": self.uuid, "node_hostname": self.node}
        if self.trace is not None:
            info.update(signature=self.trace.signature, top_frame=self.trace.top_frame)
        try:
            record = dumpinfo.event_record(info, self.kargs, self.meta, zip_name)
            write_event(self.settings.event_dir, self.uuid, dumpinfo.event_line(record),
                        self.settings.event_file_mode)
        except OSError as err:
            self.log.error("event.failed", error=str(err))

    def _log_done(self, part: PartFile, zw: zipstream.ZipWriter) -> None:
        m = self.meta
        self.log.info("compose.done", zip=part.zip_name, core_size=self.core_size,
                      zip_size=zw.offset, compression=self.compression, truncated=self.truncated,
                      pod_found_by=m.pod_found_by, namespace=m.namespace, podname=m.podname,
                      container=m.container, metadata_errors=len(m.errors) + len(self.errors),
                      runtime=self.cri.via if self.cri else None,
                      runtime_calls=self.cri.calls if self.cri else 0,
                      **self._trace_fields(),
                      seconds=round(time.monotonic() - self.started, 3),
                      cpu_s=cpu_seconds(), max_rss_kib=peak_rss_kib())

    def _trace_fields(self) -> dict:
        """compose.done's stack fields: the signature and top frame (null when unsigned), how the
        trace went (``signed``, ``unsigned``, ``failed``, ``off``) and its time after release."""
        t = self.trace
        if t is None:
            return {"signature": None, "top_frame": None,
                    "stack": "off" if not self.settings.stack_trace else "failed"}
        return {"signature": t.signature, "top_frame": t.top_frame, "stack": t.result,
                "stack_seconds": t.stack["seconds"]}


def cpu_seconds() -> float:
    """This process's CPU time so far, every thread, user and system: what one crash costs the node."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 4)


def peak_rss_kib() -> int | None:
    """This process's peak resident memory (VmHWM): what one crash costs the node, for the log.

    Not getrusage's ru_maxrss: it keeps the high-water mark of the image before exec.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
