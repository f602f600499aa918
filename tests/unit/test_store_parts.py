"""Part sizing: S3's and Azure's limits, and a tebibyte fits."""

from __future__ import annotations

import pytest

from cdh.store.parts import AZURE_LIMITS, MAX_PART_BYTES, MAX_PARTS, MiB, PartSizer, TiB


def test_part_size_grows_so_a_tebibyte_fits():
    sizer = PartSizer(16 * MiB)
    assert sizer.part_size(1 * MiB) == 16 * MiB
    size = sizer.part_size(TiB)
    assert size % MiB == 0 and TiB / size <= MAX_PARTS
    parts = sizer.parts(TiB)
    assert len(parts) <= MAX_PARTS
    assert sum(p.length for p in parts) == TiB
    assert parts[-1].offset + parts[-1].length == TiB


def test_parts_cover_the_file_exactly():
    parts = PartSizer(5 * MiB).parts(12 * MiB + 7)
    assert [(p.number, p.offset, p.length) for p in parts] == [
        (1, 0, 5 * MiB), (2, 5 * MiB, 5 * MiB), (3, 10 * MiB, 2 * MiB + 7)]


def test_too_big_for_s3_is_refused():
    with pytest.raises(ValueError, match="10000 parts"):
        PartSizer(16 * MiB).part_size(MAX_PARTS * MAX_PART_BYTES + 1)
    with pytest.raises(ValueError):
        PartSizer(1 * MiB)


def test_azure_takes_fifty_thousand_blocks_of_up_to_4000_mib():
    sizer = PartSizer(16 * MiB, AZURE_LIMITS)
    half = TiB // 2  # 32,768 blocks of 16 MiB: too many parts for S3, not for Azure
    assert sizer.part_size(half) == 16 * MiB and PartSizer(16 * MiB).part_size(half) > 16 * MiB
    assert sizer.part_size(TiB) == 21 * MiB and len(sizer.parts(TiB)) <= 50_000
    with pytest.raises(ValueError, match="Azure takes in 50000 parts"):
        sizer.part_size(50_000 * 4000 * MiB + 1)
