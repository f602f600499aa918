"""CRC-64/NVME (Azure) and CRC-32C (Cloud Storage) from the ISA-L inside python-isal: the published check
values, and the same values as a bit-by-bit reference for random data of any length and split."""

from __future__ import annotations

import os
import random

from cdh.store import crc


def reference(data: bytes, poly: int, width: int) -> int:
    """A reflected CRC with all-ones init and xorout, one bit at a time (the definition, slowly)."""
    mask = (1 << width) - 1
    value = mask
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ poly if value & 1 else value >> 1
    return value ^ mask


CRC64_NVME = (0x9A6C9329AC4BC9B5, 64)  # reflected 0xAD93D23594C93659
CRC32C = (0x82F63B78, 32)


def test_check_values():
    assert crc.crc64nvme(b"123456789") == 0xAE8B14860A799888
    assert crc.crc32c(b"123456789") == 0xE3069283
    assert crc.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720, B.4: 32 bytes of zeros
    assert crc.crc64nvme(b"") == 0 and crc.crc32c(b"") == 0


def test_random_data_in_any_split_matches_the_reference():
    rng = random.Random(17)
    for n in (1, 7, 64, 1000, 4099):
        data = os.urandom(n)
        assert crc.crc64nvme(data) == reference(data, *CRC64_NVME)
        assert crc.crc32c(data) == reference(data, *CRC32C)
        cut = rng.randrange(0, n + 1)
        view = memoryview(bytearray(data))
        assert crc.crc64nvme(view[cut:], crc.crc64nvme(view[:cut])) == crc.crc64nvme(data)
        assert crc.crc32c(view[cut:], crc.crc32c(view[:cut])) == crc.crc32c(data)


def test_the_header_forms():
    assert crc.crc64_b64(0xAE8B14860A799888) == "iJh5CoYUi64="  # little-endian, as x-ms-content-crc64
    assert crc.crc32c_b64(0xE3069283) == "4waSgw=="            # big-endian, as Cloud Storage's crc32c
