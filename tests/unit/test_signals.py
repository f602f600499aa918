"""Signal names and meanings, with the si_code detail (cdh/signals.py)."""

from __future__ import annotations

from cdh import signals


def test_signal_texts():
    assert signals.name(11) == "SIGSEGV" and signals.name(99) == "signal 99" and signals.name(None)
    assert signals.meaning(6).startswith("abort")
    assert signals.code_meaning(11, 2).startswith("SEGV_ACCERR")
    assert signals.code_meaning(11, 0x80).startswith("the kernel reports no address")
    assert signals.code_meaning(6, -6).startswith("SI_TKILL")
    assert signals.code_meaning(8, 1).startswith("FPE_INTDIV")
