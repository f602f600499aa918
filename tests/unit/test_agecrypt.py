"""Encryption to a route's recipients (cdh/agecrypt.py): age files that age's own CLI opens, and the
other way round; sizes as the format says; identities read as ``age -d -i`` reads them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cdh import agecrypt
from tests.support.agekeys import keypair
from tests.support.require import require


def encrypt_file(src: str, dst: str, recipients: tuple[str, ...]) -> int:
    with open(src, "rb") as f, open(dst, "wb") as out:
        return agecrypt.encrypt(f.fileno(), os.fstat(f.fileno()).st_size, out.fileno(), recipients)


@pytest.mark.parametrize("size", [0, 1, agecrypt.CHUNK - 1, agecrypt.CHUNK, agecrypt.CHUNK + 1,
                                  3 * agecrypt.CHUNK])
def test_round_trip_and_size_as_the_format_says(tmp_path, size):
    ident, rcpt = keypair(tmp_path)
    other_ident, other = keypair(tmp_path, "other")
    src = tmp_path / "a.zip"
    src.write_bytes(os.urandom(size))
    total = encrypt_file(str(src), str(tmp_path / "a.zip.age"), (rcpt, other))
    assert total == os.path.getsize(tmp_path / "a.zip.age")
    assert total <= agecrypt.size_bound(size, 2)
    for key in (ident, other_ident):
        out = tmp_path / f"out-{os.path.basename(key)}"
        assert agecrypt.decrypt(str(tmp_path / "a.zip.age"), str(out), agecrypt.read_identities(key)) == size
        assert out.read_bytes() == src.read_bytes()


def test_encrypt_reads_the_descriptor_by_offset_and_stops_at_size(tmp_path):
    _, rcpt = keypair(tmp_path)
    src = tmp_path / "a.zip"
    src.write_bytes(b"x" * 1000)
    with open(src, "rb") as f, open(tmp_path / "out", "wb") as out:
        f.seek(700)  # another reader's offset is left alone
        agecrypt.encrypt(f.fileno(), 500, out.fileno(), (rcpt,))  # the zip as held: 500 bytes
        assert f.tell() == 700
        with pytest.raises(OSError, match="ended at 1000 bytes, 2000 were expected"):
            agecrypt.encrypt(f.fileno(), 2000, out.fileno(), (rcpt,))


def test_the_wrong_identity_and_a_damaged_file_open_nothing(tmp_path):
    _, rcpt = keypair(tmp_path)
    wrong, _ = keypair(tmp_path, "wrong")
    src = tmp_path / "a.zip"
    src.write_bytes(os.urandom(200_000))
    encrypt_file(str(src), str(tmp_path / "a.age"), (rcpt,))
    with pytest.raises(agecrypt.DecryptError):
        agecrypt.decrypt(str(tmp_path / "a.age"), str(tmp_path / "out"), agecrypt.read_identities(wrong))
    assert not (tmp_path / "out").exists()
    ident = str(tmp_path / "key.txt")
    data = bytearray((tmp_path / "a.age").read_bytes())
    data[-100] ^= 1
    (tmp_path / "bad.age").write_bytes(bytes(data))
    with pytest.raises(agecrypt.DecryptError):
        agecrypt.decrypt(str(tmp_path / "bad.age"), str(tmp_path / "out"), agecrypt.read_identities(ident))
    assert not (tmp_path / "out").exists()
    (tmp_path / "cut.age").write_bytes(bytes(data[:-70_000]))  # cut at a chunk boundary's neighbourhood
    with pytest.raises(agecrypt.DecryptError):
        agecrypt.decrypt(str(tmp_path / "cut.age"), str(tmp_path / "out"), agecrypt.read_identities(ident))
    assert not (tmp_path / "out").exists()


def test_decrypt_never_overwrites(tmp_path):
    ident, rcpt = keypair(tmp_path)
    (tmp_path / "a").write_bytes(b"a")
    encrypt_file(str(tmp_path / "a"), str(tmp_path / "a.age"), (rcpt,))
    (tmp_path / "exists").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        agecrypt.decrypt(str(tmp_path / "a.age"), str(tmp_path / "exists"), agecrypt.read_identities(ident))
    assert (tmp_path / "exists").read_bytes() == b"mine"


def test_the_age_cli_opens_ours_and_we_open_its(tmp_path):
    require(shutil.which("age") is not None, "age (Debian's age package) checks interoperability")
    subprocess.run(["age-keygen", "-o", str(tmp_path / "k.txt")], check=True, capture_output=True)
    rcpt = subprocess.run(["age-keygen", "-y", str(tmp_path / "k.txt")], check=True, capture_output=True,
                          text=True).stdout.strip()
    src = tmp_path / "a.zip"
    src.write_bytes(os.urandom(300_000))
    encrypt_file(str(src), str(tmp_path / "ours.age"), (rcpt,))
    out = subprocess.run(["age", "-d", "-i", str(tmp_path / "k.txt"), str(tmp_path / "ours.age")],
                         check=True, capture_output=True).stdout
    assert out == src.read_bytes()
    subprocess.run(["age", "-r", rcpt, "-o", str(tmp_path / "theirs.age"), str(src)], check=True)
    agecrypt.decrypt(str(tmp_path / "theirs.age"), str(tmp_path / "back"),
                     agecrypt.read_identities(str(tmp_path / "k.txt")))
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_identity_files_as_age_reads_them(tmp_path):
    ident, rcpt = keypair(tmp_path)
    two = tmp_path / "two.txt"
    other = keypair(tmp_path, "b")[0]
    two.write_text(Path(ident).read_text() + "\n\n" + Path(other).read_text())
    got = agecrypt.read_identities(str(two))
    assert len(got) == 2 and agecrypt.identity_fingerprints(got)[0] == agecrypt.fingerprint(rcpt)
    secret = Path(ident).read_text().splitlines()[-1]
    bad = tmp_path / "bad.txt"
    bad.write_text(f"# comment\n{secret[:-3]}xyz\n")
    with pytest.raises(ValueError) as err:
        agecrypt.read_identities(str(bad))
    assert str(err.value) == f"{bad}:2: not an age X25519 identity (AGE-SECRET-KEY-1...)"
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no age identity in it"):
        agecrypt.read_identities(str(tmp_path / "empty.txt"))
    with pytest.raises(ValueError, match="cannot read it"):
        agecrypt.read_identities(str(tmp_path / "missing.txt"))


def test_fingerprints_are_short_stable_and_header_safe(tmp_path):
    _, rcpt = keypair(tmp_path)
    fp = agecrypt.fingerprint(rcpt)
    assert fp == agecrypt.fingerprint(f"  {rcpt}\n") and len(fp) == 16 and int(fp, 16) >= 0
    assert agecrypt.recipient(f" {rcpt} ") == rcpt
