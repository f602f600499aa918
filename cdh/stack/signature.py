"""The crash signature: one short string that is the same for the same bug, on any node.

The normal form is defined, with its version, in the README ("Crash signatures"); this module
is that definition in code, and tests/unit/test_stack_signature.py holds its promises. In short,
version 1, from the crashing thread's frames (innermost first):

1. when the process killed itself (abort, raise) from inside a signal handler, restart at the
   frame the signal interrupted (the real fault, not the handler's report-and-die path);
2. drop the runtime's frames: the C/C++ runtime's modules, abort/raise/assert/thread-start
   functions (static binaries), Go's ``runtime.*``, Rust's panic machinery, frames in no file;
3. fold recursion (consecutive equal frames count once);
4. keep three tokens: ``module!function`` (GCC clone suffixes cut), else
   ``<build id>+0x<offset>``, else ``module+0x<offset>``; names win over build ids, so a
   rebuild of the same code keeps its signature;
5. when step 2 leaves nothing, the first frames of step 1 as they are.

``signature = "1-" + hex(BLAKE2b-64("cdh-signature-1\\n" + "\\n".join(tokens)))``. A change of
any step is a new version (a new prefix), so an old signature never silently means something
else; the tokens are stored beside it (dump-info ``stack.signature_frames``).

Imported by the composer after the process is released, and by the tools.
"""

from __future__ import annotations

import os
import re

# BLAKE2 without hashlib: hashlib loads OpenSSL's libcrypto (4.6 MB more in the host runtime).
# CPython always builds _blake2; hashlib.blake2b is this very function.
from _blake2 import blake2b

SIGNATURE_VERSION = "1"
SIGNATURE_FRAMES = 3
TOP_FRAME_MAX = 128           # characters of the top frame in listings and object metadata

# Patterns are strings, compiled by re's cache on first use (nothing compiled at import).
RUNTIME_MODULES = (
    r"^(libc|libpthread|libdl|librt|libresolv|ld-linux(-[\w-]+)?|ld64|ld|libc\.musl-\w+|ld-musl-\w+"
    r"|libstdc\+\+|libc\+\+|libc\+\+abi|libgcc_s|libunwind|linux-vdso|linux-gate|\[vdso\])(\.so)?$")
RUNTIME_FUNCTIONS = frozenset({
    "_start", "__libc_start_main", "__libc_start_call_main", "__libc_start_main_impl",
    "start_thread", "clone", "clone3", "__clone", "__clone3", "__GI___clone3", "__restore_rt",
    "abort", "raise", "gsignal", "pthread_kill", "__pthread_kill_implementation",
    "__pthread_kill_internal", "__assert_fail", "__assert_fail_base", "__assert_perror_fail",
    "__libc_message", "__libc_fatal", "__fortify_fail", "__chk_fail", "__stack_chk_fail",
    "malloc_printerr", "__malloc_assert", "__kernel_vsyscall", "_ZSt9terminatev", "__cxa_throw",
    "__cxa_rethrow", "_ZN10__cxxabiv111__terminateEPFvvE",
    "_ZN9__gnu_cxx27__verbose_terminate_handlerEv", "rust_panic", "__rust_start_panic",
    "abort_message",
})
RUNTIME_PREFIXES = ("__GI_", "runtime.", "_ZN3std9panicking", "_ZN4core9panicking", "_ZN3std3sys",
                    "_ZN3std7process5abort", "_ZN12panic_abort", "__sanitizer", "__asan")
CLONE_SUFFIX = r"(\.(cold|part|isra|constprop|lto_priv|localalias|llvm)(\.[0-9]+)?)+$"
SO_VERSION = r"(\.so)(\.[0-9][0-9.]*)$"


def module_name(path: str | None) -> str:
    """``/usr/lib/x86_64-linux-gnu/libfoo.so.1.2 (deleted)`` -> ``libfoo.so``."""
    if not path:
        return "?"
    return re.sub(SO_VERSION, r"\1", os.path.basename(path.removesuffix(" (deleted)")))


def token(frame: dict) -> str:
    """One frame of the normal form; ``frame`` has module, build_id, offset, function (None if unknown)."""
    name = module_name(frame.get("module"))
    if frame.get("function"):
        return f"{name}!{re.sub(CLONE_SUFFIX, '', frame['function'])}"
    if frame.get("offset") is None:
        return "?"
    if frame.get("build_id"):
        return f"{frame['build_id']}+{frame['offset']}"
    return f"{name}+{frame['offset']}"


def is_runtime(frame: dict) -> bool:
    if not frame.get("module"):
        return True
    if re.match(RUNTIME_MODULES, module_name(frame["module"])):
        return True
    fn = frame.get("function") or ""
    return fn in RUNTIME_FUNCTIONS or fn.startswith(RUNTIME_PREFIXES)


def normal_form(frames: list[dict], self_sent: bool) -> list[str]:
    """The tokens hashed for ``frames`` (the crashing thread's, innermost first).

    ``self_sent``: the fatal signal came from the process itself (abort, raise).
    """
    if self_sent:
        trampoline = next((i for i, f in enumerate(frames) if f.get("signal_frame")), None)
        if trampoline is not None:
            frames = frames[trampoline + 1:]
    frames = [f for f in frames if not f.get("signal_frame")]
    chosen = [f for f in frames if not is_runtime(f)] or frames
    tokens: list[str] = []
    for f in chosen:
        t = token(f)
        if t == "?":   # a pc in no file: its address says nothing stable
            continue
        if not tokens or tokens[-1] != t:
            tokens.append(t)
        if len(tokens) == SIGNATURE_FRAMES:
            break
    return tokens


def signature(tokens: list[str]) -> str | None:
    """``<version>-<16 hex digits>``, or None for no tokens (nothing was unwound)."""
    if not tokens:
        return None
    text = f"cdh-signature-{SIGNATURE_VERSION}\n" + "\n".join(tokens)
    return f"{SIGNATURE_VERSION}-{blake2b(text.encode(), digest_size=8).hexdigest()}"


def top_frame(tokens: list[str]) -> str | None:
    """The first token, for listings and object metadata (a build id shortened to 12 digits)."""
    if not tokens:
        return None
    m = re.match(r"^([0-9a-f]{12})[0-9a-f]+(\+0x[0-9a-f]+)$", tokens[0])
    return (m.group(1) + m.group(2) if m else tokens[0])[:TOP_FRAME_MAX]
