"""The ``ls``, ``get``, ``inspect`` and ``migrate`` subcommands: arguments here, the work imported when run.

``cdh.cli`` calls :func:`add_commands`; importing this module costs only argparse.

Whatever they print that came from the bucket or a dump goes through ``cdh.tools.fmt.shown``
(keys, metadata, entry names, error messages that quote them); a failure is one line on stderr
and exit code 1 (``EXIT_FAILURE``), never a traceback (``CDH_DEBUG=1`` shows one for a bug).
"""

from __future__ import annotations

import json
import os
import sys

from cdh import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from cdh.tools.migrate import PROVIDERS


def add_commands(sub) -> dict:
    """Declare the subcommands on ``sub`` (argparse subparsers); return name → handler."""
    ls = sub.add_parser("ls", help="list dumps in the bucket, newest first (metadata only)")
    ls.add_argument("--namespace", "-n", help="only this namespace (a glob such as 'team-*' works)")
    ls.add_argument("--pod", "-p", help="only this pod (glob)")
    ls.add_argument("--node", help="only this node (glob)")
    ls.add_argument("--since", help="only crashes since: a duration (30m, 2h, 7d) or a UTC date/time")
    ls.add_argument("--signature", "-s", metavar="S",
                    help="only crashes of this cause (a signature from --group; glob)")
    ls.add_argument("--group", "-g", action="store_true",
                    help="one line per crash signature: count, first and last seen, namespaces, images, top "
                         "frame; newest activity first")
    ls.add_argument("--limit", type=int, help="show at most this many (the newest; with --group, groups)")
    _bucket_args(ls, "list under this key prefix instead of the one derived from CDH_S3_KEY_PREFIX")
    ls.add_argument("--json", action="store_true", help="a JSON array, for scripts")
    get = sub.add_parser("get", help="download, verify and unpack one dump (by key or dump uuid)")
    get.add_argument("dump", metavar="KEY|UUID",
                     help="an object key, its URL (s3://, gs://, azblob://bucket/key) or a dump uuid")
    get.add_argument("-o", "--output", default=".", metavar="DIR", help="unpack into DIR/<name>/")
    get.add_argument("--keep-zip", action="store_true", help="keep the downloaded zip next to the directory")
    get.add_argument("--max-size", metavar="SIZE",
                     help="unpack at most this much (such as 64GiB; default: the core size its dump-info "
                          "states plus a margin)")
    get.add_argument("-i", "--identity", action="append", default=[], metavar="FILE",
                     help="an age identity file (as age -d -i): opens a dump a route encrypted; repeatable")
    _bucket_args(get, "search for a uuid under this key prefix")
    ins = sub.add_parser("inspect", help="summarise a dump: crash, pod, registers, build ids, how to debug")
    ins.add_argument("path", metavar="ZIP|DIR", help="a dump zip, its unpacked directory, or a bare core")
    ins.add_argument("--log-lines", type=int, default=20, metavar="N", help="log lines to show per container")
    ins.add_argument("--threads", action="store_true",
                     help="every thread's stack, not only the crashing one's")
    ins.add_argument("--json", action="store_true", help="everything as JSON")
    mig = sub.add_parser("migrate", help="an IBM Core Dump Handler installation (its Helm values) as a cdh "
                                         "kustomize overlay")
    mig.add_argument("values", metavar="VALUES.yaml", help="`helm get values core-dump-handler -o yaml`, "
                                                           "or one of IBM's values.<provider>.yaml")
    mig.add_argument("-o", "--output", required=True, metavar="DIR", help="write the overlay into DIR")
    mig.add_argument("--manifests", metavar="PATH",
                     help="cdh's k8s-manifests (default: this checkout's), or a kustomize remote base")
    mig.add_argument("--provider", choices=PROVIDERS, help="the cdh overlay to build on (default: guessed "
                                                           "from the values)")
    return {"ls": run_ls, "get": run_get, "inspect": run_inspect, "migrate": run_migrate}


def _bucket_args(p, prefix_help: str) -> None:
    p.add_argument("--bucket", help="bucket or container (default: CDH_DESTINATION's, or CDH_S3_BUCKET)")
    p.add_argument("--prefix", help=prefix_help)
    p.add_argument("--concurrency", type=int, default=16, help="HEAD requests in flight (default 16)")


def _destination(ns):
    """The destination (the agent's, from the same settings and credential chain; ``--bucket``
    names another bucket) or an exit code."""
    import dataclasses

    from cdh import config, destination

    dest = destination.from_settings(config.from_environment("agent"))  # ConfigError: cdh/cli.py, exit 3
    if ns.bucket:
        dest = dataclasses.replace(dest, bucket=ns.bucket)
    if not dest.bucket:
        print(f"cdh {ns.command}: no bucket: set CDH_DESTINATION or CDH_S3_BUCKET (or S3_BUCKET_NAME), "
              "or pass --bucket", file=sys.stderr)
        return None, EXIT_CONFIG
    return dest, EXIT_OK


def run_ls(ns) -> int:
    import asyncio

    from cdh.tools.bucket import BucketError, Filters, find_dumps
    from cdh.tools.timespec import parse_since

    dest, code = _destination(ns)
    if dest is None:
        return code
    try:
        since = parse_since(ns.since) if ns.since else None
    except ValueError as err:
        print(f"cdh ls: --since {ns.since!r}: {err}", file=sys.stderr)
        return EXIT_USAGE
    filters = Filters(namespace=ns.namespace, pod=ns.pod, node=ns.node, since=since, signature=ns.signature)
    known = {"node": ns.node, "namespace": ns.namespace, "pod": ns.pod, "signature": ns.signature}
    prefixes, levels = _prefixes(ns, dest, known, since)

    async def work():
        from cdh.store import open_store

        async with open_store(dest, pool_size=ns.concurrency) as store:
            return await find_dumps(store, prefixes, filters, ns.concurrency, levels)

    try:
        dumps = asyncio.run(work())
    except BucketError as err:
        return _fail("ls", err)
    where = dest.url(prefixes[0] if len(prefixes) == 1 else "...")
    if ns.group:
        from cdh.tools.groups import group

        groups = group(dumps)
        _print_groups(groups[: ns.limit] if ns.limit else groups, ns.json, where)
        return EXIT_OK
    _print_dumps(dumps[: ns.limit] if ns.limit else dumps, ns.json, where)
    return EXIT_OK


def _prefixes(ns, dest, known: dict, since: float | None = None) -> tuple[list[str], list[int]]:
    """The key prefixes to list (``--prefix``, else narrowed from the key template by what is known),
    each with the template directories below it (keys.listing_levels)."""
    from cdh import keys

    if ns.prefix is not None:
        return [ns.prefix], [0]
    template = dest.key_prefix_template
    prefixes = keys.listing_prefixes(template, known, since)
    return prefixes, [keys.listing_levels(template, p) for p in prefixes]


def _print_dumps(dumps, as_json: bool, where: str) -> None:
    """One row a crash; its cause as a SIGNATURE (in every layout's listing), to pass to --signature."""
    from cdh import signals
    from cdh.tools.fmt import human_size, utc

    def row(d) -> list[str]:
        return [utc(d.time), d.namespace or "-", d.pod or "-", d.container or "-", d.exe or "-",
                signals.name(d.signal) if d.signal is not None else "-", human_size(d.size),
                d.signature or "-", d.key]

    headers = ["TIME (UTC)", "NAMESPACE", "POD", "CONTAINER", "EXE", "SIGNAL", "SIZE", "SIGNATURE", "KEY"]
    _print_rows(dumps, as_json, where, headers, row)


def _print_groups(groups, as_json: bool, where: str) -> None:
    from cdh.tools.fmt import utc
    from cdh.tools.groups import few

    def row(g) -> list[str]:
        return [g.signature or "(none)", str(g.count), utc(g.first), utc(g.last), few(g.namespaces),
                few(g.images, 1), g.top_frame or "-"]

    headers = ["SIGNATURE", "COUNT", "FIRST SEEN (UTC)", "LAST SEEN (UTC)", "NAMESPACES", "IMAGES",
               "TOP FRAME"]
    _print_rows(groups, as_json, where, headers, row)


def _print_rows(items, as_json: bool, where: str, headers: list[str], row) -> None:
    """A table of ``row(item)`` under ``headers``, or a JSON array of ``item.as_json()``, written row
    by row (100,000 rows never become one string); nothing found is one line on stderr."""
    from cdh.tools.fmt import print_table

    if as_json:
        _print_json_array(i.as_json() for i in items)
        return
    if not items:
        print(f"no dumps found in {where}", file=sys.stderr)
        return
    print_table(headers, row, items)


def _print_json_array(items) -> None:
    """What ``json.dumps(list, indent=2)`` prints, one item at a time."""
    import textwrap

    write, first = sys.stdout.write, True
    for item in items:
        write(("[\n" if first else ",\n") + textwrap.indent(json.dumps(item, indent=2), "  "))
        first = False
    write("[]\n" if first else "\n]\n")


def _fail(command: str, err: BaseException | str) -> int:
    """One line on stderr, with anything from the bucket in it escaped; EXIT_FAILURE."""
    from cdh.tools.dumpzip import why
    from cdh.tools.fmt import shown

    if isinstance(err, OSError):  # "out/x.zip: File exists", not "[Errno 17] File exists: 'out/x.zip'"
        err = f"{err.filename}: {why(err)}" if err.filename else why(err)
    print(shown(f"cdh {command}: {err}"), file=sys.stderr)
    return EXIT_FAILURE


def run_get(ns) -> int:
    import asyncio
    import dataclasses

    from cdh import destination
    from cdh.agecrypt import DecryptError
    from cdh.tools.bucket import BucketError
    from cdh.tools.dumpzip import DumpError
    from cdh.tools.fetch import NeedsIdentity, VerifyError

    max_size = None
    if ns.max_size is not None:
        from cdh.config.values import size

        try:
            max_size = size(1)(ns.max_size)
        except ValueError as err:
            print(f"cdh get: --max-size {ns.max_size!r}: {err}", file=sys.stderr)
            return EXIT_USAGE
    dest, code = _destination(ns)
    if dest is None:
        return code
    scheme = f"{dest.kind}://"
    if ns.dump.startswith(scheme):  # a full URL names its own bucket
        bucket, _, ns.dump = ns.dump[len(scheme):].partition("/")
        dest = dataclasses.replace(dest, bucket=bucket)
    elif ns.dump.partition("://")[0] in destination.KINDS:
        print(f"cdh get: {ns.dump}: the destination is {dest.url()} (CDH_DESTINATION); give a key, a uuid "
              f"or a {scheme} URL", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_get(ns, dest, max_size))
    except (BucketError, DumpError, VerifyError, NeedsIdentity, DecryptError, OSError) as err:
        return _fail("get", err)


async def _get(ns, dest, max_size: int | None) -> int:
    from cdh import agecrypt, keys, ondisk
    from cdh.store import open_store
    from cdh.tools.bucket import BucketError
    from cdh.tools.dumpzip import DumpError
    from cdh.tools.fetch import VerifyError, decrypt, download, identities_for, resolve
    from cdh.tools.fmt import shown
    from cdh.tools.progress import Progress

    prefixes, levels = _prefixes(ns, dest, {})
    os.makedirs(ns.output, exist_ok=True)
    async with open_store(dest, pool_size=ns.concurrency) as store:
        info = await resolve(store, ns.dump, prefixes, levels, ns.concurrency)
        key = info.key
        identities = identities_for(info, dest.url(key), ns.identity)  # None: not encrypted
        base = keys.zip_name_of(key)
        if not ondisk.is_finished_zip(base) or len(base.encode()) > 255:  # the local file's name
            raise BucketError(f"{dest.url(key)}: its name is not a dump zip's")
        unpacked = os.path.join(ns.output, base.removesuffix(ondisk.ZIP_SUFFIX))
        if os.path.lexists(unpacked):
            raise DumpError(f"{unpacked} already exists")
        zip_path = os.path.join(ns.output, base)
        got = zip_path + (keys.ENCRYPTED_SUFFIX if identities is not None else "")  # <name>.zip.age
        try:
            checked = await download(store, info, got, Progress(shown(base), info.size))
        except VerifyError as err:
            raise VerifyError(f"{dest.url(key)} failed verification: {err}; nothing kept") from None
    if identities is not None:
        try:
            checked.append(await decrypt(got, zip_path, identities))
        except agecrypt.DecryptError as err:
            raise agecrypt.DecryptError(f"{dest.url(key)} does not open: {err}; nothing kept") from None
    where = _unpack(ns, dest.url(key), zip_path, max_size)
    _print_layout(dest.url(key), where, checked, zip_path if ns.keep_zip else None)
    return EXIT_OK


def _unpack(ns, source: str, zip_path: str, max_size: int | None) -> str:
    """Unpack the downloaded zip; on any failure the zip goes too (unless --keep-zip) and the one
    line says why (DumpError)."""
    from cdh.tools.dumpzip import DumpError, why
    from cdh.tools.unpack import TooBig, unpack

    kept = f"; the zip is kept: {zip_path}" if ns.keep_zip else "; nothing kept"
    try:
        where = unpack(zip_path, ns.output, max_size)
    except TooBig as err:
        problem = f"{source} not unpacked: {err}{kept}"
    except DumpError as err:
        problem = f"{source} is damaged: {err}{kept}"
    except OSError as err:
        problem = f"cannot unpack {source} into {ns.output}: {why(err)}{kept}"
    else:
        if not ns.keep_zip:
            os.unlink(zip_path)
        return where
    if not ns.keep_zip:
        os.unlink(zip_path)
    raise DumpError(problem)


def _print_layout(source: str, where: str, checked: list[str], kept_zip: str | None) -> None:
    from cdh import ondisk
    from cdh.tools.dumpzip import Dump
    from cdh.tools.fmt import shown

    with Dump(where) as dump:
        n = len(dump.entries)
        rows = [("core", dump.entry(ondisk.CORE))]
        rows += [("metadata", dump.entry(s)) for s in (ondisk.DUMP_INFO, ondisk.POD_INFO,
                                                        ondisk.RUNTIME_INFO, ondisk.PS_INFO)]
        rows += [(f"image {i}", dump.entry(ondisk.image_info_entry(i))) for i in dump.containers()]
        rows += [(f"log {i}", dump.entry(ondisk.log_entry(i))) for i in dump.containers()]
        proc = dump.name + ondisk.PROC_DIR
        if any(e.startswith(proc + "/") for e in dump.entries):
            rows.append(("proc", proc + "/"))
    print(shown(f"{source} -> {where}/"))
    print(shown(f"verified: {', '.join(checked)}, CRC-32 of {n} entries"))
    for label, entry in rows:
        if entry:
            print(shown(f"  {label:<9} {entry}"))
    if kept_zip:
        print(shown(f"zip kept: {kept_zip}"))
    print(shown(f"next: cdh inspect {where}"))


def run_inspect(ns) -> int:
    from cdh.tools.dumpzip import DumpError
    from cdh.tools.render import render
    from cdh.tools.summary import summarize

    try:
        summary = summarize(ns.path, log_lines=ns.log_lines)
    except (DumpError, OSError) as err:
        return _fail("inspect", err)
    except Exception as err:  # a bug, or an input nobody foresaw: still one line
        if os.environ.get("CDH_DEBUG") == "1":
            raise
        return _fail("inspect", f"cannot read {ns.path}: internal error ({type(err).__name__}); "
                                "CDH_DEBUG=1 shows where")
    if ns.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        sys.stdout.write(render(summary, all_threads=ns.threads))
    return EXIT_OK


def run_migrate(ns) -> int:
    from cdh.tools.migrate import run

    return run(ns.values, ns.output, ns.manifests, ns.provider)
