"""Unwinding one thread: registers + stack bytes + the mapped modules -> frames.

Per frame, in order of trust:

1. **CFI**: the module's ``.eh_frame`` row for the pc (:mod:`.cfi`) gives the caller's
   registers, whatever the compiler did with the frame pointer.
2. **Frame pointer**, where a module has no CFI for the pc (hand-written assembly, Go
   binaries, JIT code): x86_64 ``[rbp] = caller's rbp, [rbp+8] = return address``;
   aarch64 ``[x29] = caller's x29, [x29+8] = x30``.
3. Frame 0 only: a pc in no mapped file (a call through a bad function pointer) returns to
   ``[rsp]`` on x86_64, to ``x30`` on aarch64.

Return addresses are looked up at ``pc - 1`` (the call instruction, which may be the last of
its function: a ``noreturn`` call to ``abort()``), except in frame 0 and in the frame a
signal interrupted (the CIE of a signal trampoline says 'S'), whose pcs are exact.

It stops at: the outermost frame (CFI marks the return address undefined: ``_start``,
``clone3``), a pc of 0, a stack pointer that does not grow, memory that was not captured,
or MAX_FRAMES.
"""

from __future__ import annotations

import struct
import time

from cdh.stack.addrspace import Memory, Module, Modules
from cdh.stack.cfi import Fde, row_for
from cdh.stack.dwarf import CfiError, evaluate
from cdh.stack.elffile import ElfError

MAX_FRAMES = 64

# DWARF register numbers (x86_64 psABI §3.6.2; AAPCS64 DWARF §4.1) by cdh/elfcore.py's register names.
DWARF_REGS = {
    "x86_64": {"rax": 0, "rdx": 1, "rcx": 2, "rbx": 3, "rsi": 4, "rdi": 5, "rbp": 6, "rsp": 7,
               **{f"r{i}": i for i in range(8, 16)}, "rip": 16},
    "aarch64": {**{f"x{i}": i for i in range(31)}, "sp": 31, "pc": 32},
}
PC_REG = {"x86_64": 16, "aarch64": 32}
SP_REG = {"x86_64": 7, "aarch64": 31}
FP_REG = {"x86_64": 6, "aarch64": 29}
LR_REG = {"aarch64": 30}
# aarch64 pointer authentication: user addresses have at most 52 bits; the rest is the PAC.
# (The core's NT_ARM_PAC_MASK note gives the exact mask; this is its safe superset.)
PAC_STRIP = (1 << 52) - 1


class Frame:
    __slots__ = ("exact", "function", "function_offset", "how", "module", "pc", "signal_frame", "sp")

    def __init__(self, pc: int, sp: int, how: str, module: Module | None, exact: bool) -> None:
        self.pc, self.sp = pc, sp
        self.how = how                     # first | cfi | fp | ra-at-sp | lr
        self.module = module
        self.exact = exact                 # pc is where it stopped (frame 0, interrupted by a signal)
        self.signal_frame = False          # this frame is a signal trampoline
        self.function: str | None = None
        self.function_offset: int | None = None

    @property
    def lookup_pc(self) -> int:
        return self.pc if self.exact else self.pc - 1

    @property
    def offset(self) -> int | None:
        """Link-time address of the pc in its module: what addr2line -e MODULE takes."""
        if self.module is None or self.module.bias is None:
            return None
        return self.pc - self.module.bias


class Unwound:
    __slots__ = ("frames", "stopped")

    def __init__(self, frames: list[Frame], stopped: str) -> None:
        self.frames = frames
        self.stopped = stopped             # why there are no more frames


def unwind(machine: str, registers: dict[str, int], memory: Memory, modules: Modules,
           max_frames: int = MAX_FRAMES, deadline: float | None = None) -> Unwound:
    """The frames of one thread, innermost first. ``deadline`` (time.monotonic()): the frames after
    it are left out (a hostile binary's CFI can make each frame cost a lot)."""
    names = DWARF_REGS[machine]
    regs = {names[n]: v for n, v in registers.items() if n in names}
    pcr, spr = PC_REG[machine], SP_REG[machine]
    frames: list[Frame] = []
    how, exact = "first", True
    while len(frames) < max_frames:
        if frames and deadline is not None and time.monotonic() > deadline:
            return Unwound(frames, "the time budget (CDH_STACK_BUDGET) was spent")
        pc, sp = regs.get(pcr, 0), regs.get(spr, 0)
        if pc == 0:
            return Unwound(frames, "pc is 0")
        frame = Frame(pc=pc, sp=sp, how=how, module=modules.find(pc), exact=exact)
        frames.append(frame)
        step, why = _step(machine, frame, regs, memory, modules, first=len(frames) == 1)
        if step is None:
            return Unwound(frames, why)
        new_regs, how, signal = step
        frame.signal_frame = signal
        new_sp = new_regs.get(spr, 0)
        # A signal may have been taken on an alternate stack: the interrupted sp can be anywhere.
        if not signal and (new_sp < sp or (new_sp == sp and new_regs.get(pcr) == pc)):
            return Unwound(frames, f"the stack pointer does not grow ({new_sp:#x} after {sp:#x})")
        regs, exact = new_regs, signal
    return Unwound(frames, f"{max_frames} frames (the limit)")


def _step(machine: str, frame: Frame, regs: dict[int, int], memory: Memory, modules: Modules,
          first: bool):
    """((caller's registers, how, this frame is a signal trampoline), None) or (None, why it stops)."""
    mod = frame.module
    why = "no module maps the pc"
    if mod is not None and mod.image is not None and mod.bias is not None:
        try:
            fde = mod.fde_for(frame.lookup_pc - mod.bias)
        except (CfiError, ElfError, OSError, struct.error, IndexError) as err:
            fde, why = None, f"bad CFI: {err}"
        else:
            why = "no CFI for the pc"
        if fde is not None:
            try:
                return _cfi_step(machine, fde, frame.lookup_pc - mod.bias, regs, memory), None
            except (CfiError, IndexError, struct.error) as err:
                return None, f"CFI: {err}"
            except _EndOfStack:
                return None, "outermost frame (CFI: return address undefined)"
        step = _sigreturn_step(machine, frame, regs, memory)
        if step is not None:
            return step, None
    elif mod is not None:
        why = "the module's file could not be read"
    if first and mod is None:
        return _bad_call_step(machine, regs, memory)
    step = _fp_step(machine, regs, memory, modules)
    if step is not None:
        return step, None
    return None, why + "; no frame pointer chain either"


class _EndOfStack(Exception):
    pass


def _cfi_step(machine: str, fde: Fde, vaddr: int, regs: dict[int, int], memory: Memory):
    row = row_for(fde, vaddr)
    if row.cfa[0] == "reg":
        base = regs.get(row.cfa[1])
        if base is None:
            raise CfiError(f"CFA needs register {row.cfa[1]}, unknown here")
        cfa = (base + row.cfa[2]) & 0xFFFFFFFFFFFFFFFF
    else:
        cfa = evaluate(row.cfa[1], regs, memory.u64)
    new = dict(regs)   # callee-saved registers not mentioned keep their values ("same value")
    ra_reg = fde.cie.ra_reg
    for reg, rule in row.regs.items():
        kind = rule[0]
        if kind == "offset":
            value = memory.u64(cfa + rule[1])
            if value is None:
                raise CfiError(f"register {reg} was saved at {cfa + rule[1]:#x}, not captured")
            new[reg] = value
        elif kind == "val_offset":
            new[reg] = cfa + rule[1]
        elif kind == "reg":
            new[reg] = regs.get(rule[1], 0)
        elif kind == "expr":
            addr = evaluate(rule[1], regs, memory.u64, push=cfa)
            value = memory.u64(addr)
            if value is None:
                raise CfiError(f"register {reg} was saved at {addr:#x}, not captured")
            new[reg] = value
        elif kind == "val_expr":
            new[reg] = evaluate(rule[1], regs, memory.u64, push=cfa)
        elif kind == "undef":
            if reg == ra_reg:
                raise _EndOfStack
            new.pop(reg, None)
    new[SP_REG[machine]] = cfa
    ra = new.get(ra_reg)
    if ra is None:
        raise _EndOfStack
    if machine == "aarch64":
        ra &= PAC_STRIP
    new[PC_REG[machine]] = ra
    return new, "cfi", fde.cie.signal


# rt_sigreturn trampolines, recognised by their code where no CFI describes them (Go's
# runtime.sigreturn__sigaction, musl): x86_64 "mov $15,%eax; syscall" (or "mov $15,%rax"),
# aarch64 "mov x8,#139; svc #0". The saved registers are then read from the kernel's
# ucontext at the trampoline's SP (x86_64: &ucontext; aarch64: &siginfo, ucontext 128 on).
SIGRETURN_CODE = {"x86_64": (b"\xb8\x0f\x00\x00\x00\x0f\x05", b"\x48\xc7\xc0\x0f\x00\x00\x00\x0f\x05"),
                  "aarch64": (b"\x68\x11\x80\xd2\x01\x00\x00\xd4",)}
# (register, offset from the trampoline's SP) of the interrupted context.
SIGCONTEXT = {
    "x86_64": [(8 + i, 40 + 8 * i) for i in range(8)]
              + [(5, 104), (4, 112), (6, 120), (3, 128), (1, 136), (0, 144), (2, 152), (7, 160), (16, 168)],
    "aarch64": [(i, 312 + 8 * i) for i in range(31)] + [(31, 560), (32, 568)],
}


def _sigreturn_step(machine: str, frame: Frame, regs: dict[int, int], memory: Memory):
    mod = frame.module
    try:
        code = mod.image.read_vaddr(frame.pc - mod.bias, 9)
    except (ElfError, OSError):
        return None
    if not any(code.startswith(p) for p in SIGRETURN_CODE[machine]):
        return None
    new = {}
    for reg, off in SIGCONTEXT[machine]:
        value = memory.u64(frame.sp + off)
        if value is None:
            return None
        new[reg] = value
    return new, "sigcontext", True


def _fp_step(machine: str, regs: dict[int, int], memory: Memory, modules: Modules):
    fp = regs.get(FP_REG[machine])
    sp = regs.get(SP_REG[machine], 0)
    if fp is None or fp < sp or not memory.covers(fp):
        return None
    saved_fp, ra = memory.u64(fp), memory.u64(fp + 8)
    if ra is None or saved_fp is None:
        return None
    if machine == "aarch64":
        ra &= PAC_STRIP
    if modules.find(ra) is None:   # a frame pointer chain that leads out of code is no chain
        return None
    new = dict(regs)
    new[FP_REG[machine]] = saved_fp
    new[SP_REG[machine]] = fp + 16
    new[PC_REG[machine]] = ra
    return new, "fp", False


def _bad_call_step(machine: str, regs: dict[int, int], memory: Memory):
    new = dict(regs)
    if machine == "x86_64":
        sp = regs.get(7, 0)
        ra = memory.u64(sp)
        if ra is None:
            return None, "the pc is in no module and [rsp] was not captured"
        new[7], new[16] = sp + 8, ra
        return (new, "ra-at-sp", False), None
    lr = regs.get(30)
    if lr is None:
        return None, "the pc is in no module and x30 is unknown"
    new[32] = lr & PAC_STRIP
    return (new, "lr", False), None


def symbolize(frames: list[Frame], deadline: float | None = None) -> None:
    """Fill ``function`` and ``function_offset`` from each module's .symtab, else .dynsym; modules
    after ``deadline`` keep their frames unnamed."""
    by_module: dict[int, tuple[Module, list[Frame]]] = {}
    for f in frames:
        if f.module is not None and f.module.image is not None and f.module.bias is not None:
            by_module.setdefault(id(f.module), (f.module, []))[1].append(f)
    for mod, group in by_module.values():
        if deadline is not None and time.monotonic() > deadline:
            return
        try:
            _, names = mod.image.symbolize([f.lookup_pc - mod.bias for f in group])
        except (ElfError, OSError, struct.error):
            continue
        for f in group:
            hit = names.get(f.lookup_pc - mod.bias)
            if hit:
                f.function, f.function_offset = hit[0], hit[1] + (f.pc - f.lookup_pc)
