"""Signal names and what they usually mean for a crash, with the si_code detail (siginfo.h).

Linux numbering (the same on x86_64 and aarch64), so a dump from a node reads
the same on a developer's Mac. Shared by the agent (its Kubernetes Events) and
the bucket tools (``ls``, ``inspect``); stdlib only, no imports.
"""

from __future__ import annotations

NAMES = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
    8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
    14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
    20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
    26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

MEANINGS = {
    3: "quit requested (Ctrl-\\ or kill -QUIT); the process was asked to dump core",
    4: "illegal instruction: corrupted code or a jump into data, a CPU feature the node lacks, "
       "or a deliberate trap (Rust/clang __builtin_trap, ud2)",
    5: "trace/breakpoint trap: a breakpoint instruction or a debugger's trap",
    6: "abort: the program called abort(), typically a failed assert, an uncaught C++ exception, "
       "glibc detecting heap corruption (double free), or a runtime's fatal error",
    7: "bus error: a misaligned access or a mapped file that shrank (access past its end)",
    8: "arithmetic exception: integer division by zero or overflow",
    11: "segmentation fault: invalid memory reference (null or dangling pointer, buffer overrun, "
        "stack overflow)",
    24: "CPU time limit exceeded (RLIMIT_CPU)",
    25: "file size limit exceeded (RLIMIT_FSIZE)",
    31: "bad system call: blocked by seccomp or not implemented",
}

# si_code values: generic ones (any signal), then per signal for kernel-raised faults.
GENERIC_CODES = {
    0: "SI_USER: sent by kill()", -1: "SI_QUEUE: sent by sigqueue()", -2: "SI_TIMER: POSIX timer",
    -6: "SI_TKILL: sent by tkill()/tgkill(), e.g. raise() or abort()", 0x80: "SI_KERNEL: sent by the kernel",
}
FAULT_CODES = {
    11: {1: "SEGV_MAPERR: address not mapped", 2: "SEGV_ACCERR: no permission for this access",
         3: "SEGV_BNDERR: failed bounds check", 4: "SEGV_PKUERR: protection key denied access",
         8: "SEGV_MTESERR: memory tag mismatch"},
    7: {1: "BUS_ADRALN: misaligned address", 2: "BUS_ADRERR: address does not exist (past end of a file?)",
        3: "BUS_OBJERR: hardware error", 4: "BUS_MCEERR_AR: memory error, consumed"},
    8: {1: "FPE_INTDIV: integer divide by zero", 2: "FPE_INTOVF: integer overflow",
        3: "FPE_FLTDIV: float divide by zero", 4: "FPE_FLTOVF: float overflow",
        5: "FPE_FLTUND: float underflow", 6: "FPE_FLTRES: inexact float result",
        7: "FPE_FLTINV: invalid float operation", 8: "FPE_FLTSUB: subscript out of range"},
    4: {1: "ILL_ILLOPC: illegal opcode", 2: "ILL_ILLOPN: illegal operand",
        3: "ILL_ILLADR: illegal addressing mode", 4: "ILL_ILLTRP: illegal trap",
        5: "ILL_PRVOPC: privileged opcode", 6: "ILL_PRVREG: privileged register",
        7: "ILL_COPROC: coprocessor error", 8: "ILL_BADSTK: internal stack error"},
    5: {1: "TRAP_BRKPT: breakpoint", 2: "TRAP_TRACE: trace trap", 3: "TRAP_BRANCH: branch trap",
        4: "TRAP_HWBKPT: hardware breakpoint or watchpoint"},
}
# SIGSEGV with SI_KERNEL on x86_64: a general protection fault, e.g. a non-canonical address.
GP_FAULT = "the kernel reports no address: a general protection fault (non-canonical pointer?)"


def name(signo: int | None) -> str:
    if signo is None:
        return "unknown signal"
    return NAMES.get(signo, f"signal {signo}")


def meaning(signo: int | None) -> str:
    return MEANINGS.get(signo, "") if signo is not None else ""


def code_meaning(signo: int, code: int) -> str:
    if code > 0 and code != 0x80 and signo in FAULT_CODES:
        return FAULT_CODES[signo].get(code, f"si_code {code}")
    if signo == 11 and code == 0x80:
        return GP_FAULT
    return GENERIC_CODES.get(code, f"si_code {code}")
