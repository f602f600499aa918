"""age key pairs for tests of encrypting routes (cdh/agecrypt.py)."""

from __future__ import annotations


def keypair(directory, name: str = "key") -> tuple[str, str]:
    """(identity file, recipient): made by pyrage, in age-keygen's format, the file in ``directory``."""
    from pyrage import x25519

    ident = x25519.Identity.generate()
    path = directory / f"{name}.txt"
    path.write_text(f"# created: by the test\n# public key: {ident.to_public()}\n{ident}\n")
    path.chmod(0o600)
    return str(path), str(ident.to_public())
