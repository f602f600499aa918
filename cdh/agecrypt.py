"""Encryption to a tenant: the age format (age-encryption.org/v1), X25519 recipients, through pyrage
(Python bindings of rage, the Rust implementation of age).

Why age: a streaming, authenticated format (ChaCha20-Poly1305 in 64 KiB chunks, each one checked on
decryption, the end marked so a cut file is refused) with small public keys a team can hand to the
platform (``age1...``), and a CLI every team can install (``age -d -i key.txt``). The node, the
bucket and the platform team hold only recipients: nothing that opens a dump.

The agent encrypts in a worker thread (:func:`encrypt`, pyrage's ``encrypt_io`` reading the held
zip in its own 8 KiB reads: the event loop keeps running; ``encrypt_file`` would hold the GIL for the
whole file) into a staged copy (cdh/agent/staging.py). The tools decrypt (:func:`decrypt`) with the
identities a user gives (:func:`read_identities`, as ``age -d -i``). Object metadata names the
recipients by :func:`fingerprint` (cdh/keys.py), so ``cdh get`` can say who can open a dump.

pyrage is imported when a recipient or identity is first read: the composer never imports this.
"""

from __future__ import annotations

import hashlib
import io
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = "age"                         # the object metadata's value for this encryption (cdh/keys.py)
RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
CHUNK = 64 << 10                       # age's payload chunk (plaintext bytes per chunk)
TAG, NONCE = 16, 16                    # per-chunk Poly1305 tag; the payload's nonce
HEADER_MAX = 64 << 10                  # a header is ~100 bytes per recipient (plus rage's grease)
HEADER_END = b"\n--- "
HEADER_SLACK = 4 << 10                 # what staging reserves for the header besides the stanzas
STANZA = 98                            # "-> X25519 <43>\n<43>\n"


class DecryptError(Exception):
    """The body does not open with the identities given, or is not an intact age file."""


def recipient(value: object) -> str:
    """An age X25519 recipient (``age1...``), checked; ValueError says what is wrong (and never echoes
    a secret key put there by mistake)."""
    if not isinstance(value, str):
        raise ValueError("an age recipient (age1...)")
    s = value.strip()
    if s.upper().startswith(IDENTITY_PREFIX):
        raise ValueError("this is an age identity (a secret key), not a recipient: remove it from the "
                         "file, rotate it, and give its public key (age-keygen -y) instead")
    from pyrage import x25519

    try:
        x25519.Recipient.from_str(s)
    except Exception:
        shown = s if len(s) <= 80 else s[:77] + "..."
        raise ValueError(f"{shown!r} is not an age X25519 recipient (age1...)") from None
    return s


def fingerprint(recipient_str: str) -> str:
    """A short, stable name of a recipient for metadata and messages: the first 8 bytes of the SHA-256
    of its ``age1...`` string, in hex. ``cdh get`` computes the same from an identity's public key."""
    return hashlib.sha256(recipient_str.strip().encode()).hexdigest()[:16]


def fingerprints(recipients: tuple[str, ...] | list[str]) -> list[str]:
    return [fingerprint(r) for r in recipients]


# ---------------------------------------------------------------- sizes


def payload_size(plain_size: int) -> int:
    """Bytes after the header for ``plain_size`` bytes of plaintext: nonce + data + one tag per chunk."""
    chunks = max(1, -(-plain_size // CHUNK))
    return NONCE + plain_size + TAG * chunks


def size_bound(plain_size: int, n_recipients: int) -> int:
    """At most how big the encrypted file of ``plain_size`` bytes is (what staging reserves)."""
    return payload_size(plain_size) + STANZA * n_recipients + HEADER_SLACK


def header_size(head: bytes) -> int:
    """The header's length, from an age file's first bytes (up to HEADER_MAX); ValueError if there is none."""
    end = head.find(HEADER_END)
    if not head.startswith(b"age-encryption.org/v1\n") or end < 0 or head.find(b"\n", end + 1) < 0:
        raise ValueError("not an age file (no header)")
    return head.index(b"\n", end + 1) + 1


# ---------------------------------------------------------------- encrypt (the agent)


class _Slice(io.RawIOBase):
    """Exactly ``size`` bytes of ``fd`` from offset 0, by pread (the descriptor's offset is left alone,
    so the same held file may be read elsewhere at the same time)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size, self.pos = fd, size, 0
        self.error: OSError | None = None  # pyrage wraps what we raise: the original, kept

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        want = min(len(b), self.size - self.pos)
        if want <= 0:
            return 0
        try:
            n = os.preadv(self.fd, [memoryview(b)[:want]], self.pos)
            if n == 0:
                raise OSError(f"the file ended at {self.pos} bytes, {self.size} were expected")
        except OSError as err:
            self.error = err
            raise
        self.pos += n
        return n


class _Out(io.RawIOBase):
    """Writes to ``fd`` (from its offset), counting the bytes and keeping the first HEADER_MAX."""

    def __init__(self, fd: int) -> None:
        self.fd, self.written, self.head = fd, 0, bytearray()
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        view = memoryview(b)
        if len(self.head) < HEADER_MAX:
            self.head += view[:HEADER_MAX - len(self.head)]
        n = 0
        try:
            while n < len(view):
                n += os.write(self.fd, view[n:])
        except OSError as err:  # ENOSPC, EIO: the caller sees it as it was
            self.error = err
            raise
        self.written += n
        return n


def encrypt(src_fd: int, size: int, dst_fd: int, recipients: tuple[str, ...]) -> int:
    """Encrypt ``size`` bytes of ``src_fd`` to ``recipients`` into ``dst_fd`` (written from its current
    offset). Blocking: run it in a worker thread. Returns the encrypted size, checked against the
    age format's own arithmetic (every plaintext byte went in, nothing else)."""
    import pyrage
    from pyrage import x25519

    keys = [x25519.Recipient.from_str(r) for r in recipients]
    src, out = _Slice(src_fd, size), _Out(dst_fd)
    try:
        with io.BufferedWriter(out, 1 << 20) as buffered:  # closing it leaves the descriptor open
            # pyrage reads 8 KiB at a time: served from a 1 MiB buffer, a tenth less CPU than a
            # pread each (measured: 1.2 against 1.33 CPU-s/GB here).
            pyrage.encrypt_io(io.BufferedReader(src, 1 << 20), buffered, keys)
    except (pyrage.EncryptError, OSError) as err:
        raise (src.error or out.error or OSError(f"age encryption failed: {err}")) from None
    if src.pos != size:
        raise OSError(f"encrypted {src.pos} bytes of {size}")
    expected = header_size(bytes(out.head)) + payload_size(size)
    if out.written != expected:
        raise OSError(f"the encrypted copy is {out.written} bytes, {expected} were expected")
    return out.written


# ---------------------------------------------------------------- decrypt (the tools)


def read_identities(path: str) -> list[Any]:
    """The X25519 identities of an age identity file (``age-keygen`` output: comments, blank lines and
    ``AGE-SECRET-KEY-1...`` lines), as ``age -d -i`` reads it. ValueError names the line, never its text."""
    from pyrage import x25519

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read(1 << 20).splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    found = []
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            found.append(x25519.Identity.from_str(s))
        except Exception:
            raise ValueError(f"{path}:{n}: not an age X25519 identity (AGE-SECRET-KEY-1...)") from None
    if not found:
        raise ValueError(f"{path}: no age identity in it")
    return found


def identity_fingerprints(identities: list[Any]) -> list[str]:
    return [fingerprint(str(i.to_public())) for i in identities]


def decrypt(src_path: str, dst_path: str, identities: list[Any]) -> int:
    """Decrypt the age file at ``src_path`` into ``dst_path`` (created, 0600), streaming; the plaintext
    size. Blocking. DecryptError (and nothing left at ``dst_path``) unless every chunk authenticates."""
    import pyrage

    fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with open(src_path, "rb", buffering=1 << 20) as src, open(fd, "wb", buffering=1 << 20) as out:
            pyrage.decrypt_io(src, out, identities)
            out.flush()
            return out.tell()
    except pyrage.DecryptError as err:  # the header: no identity given opens it, or it is not age
        _remove(dst_path)
        raise DecryptError(str(err) or "the identities given do not open it") from None
    except OSError as err:
        _remove(dst_path)
        if err.errno is None:  # the payload: a chunk failed authentication, or the file was cut short
            raise DecryptError(f"the encrypted body is damaged or cut short ({err})") from None
        raise
    except BaseException:
        _remove(dst_path)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
