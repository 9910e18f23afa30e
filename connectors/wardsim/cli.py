"""``python -m connectors.wardsim``: serve the simulators by hand, or export a data set as JSONL.

``serve`` prints one line per server (``SOURCE URL``) once all listen, then runs until SIGTERM or
SIGINT and exits 0, so a script can start it in the background and read the URLs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from connectors.wardsim.catalogue import DEFAULT_WARD_CODE, SOURCES
from connectors.wardsim.dataset import TZ, generate
from connectors.wardsim.faults import Faults
from connectors.wardsim.server import SimClock, SimServer

#: canonical port offsets, so that residence is on 8103 whatever else is served
PORT_OFFSETS = {source: n for n, source in enumerate(SOURCES)}

FAULT_HELP = (
    "[SOURCE:]NAME[=VALUE]; names: latency=SECONDS, error_rate=P, throttle_rate=P, truncate_rate=P, "
    "html_rate=P, bad_records_rate=P, duplicates, fail_next=N, throttle_next=N, truncate_next=N, "
    "html_next=N, bad_records_next=N"
)


def _now(text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime.now(TZ).replace(microsecond=0)
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=TZ)


_FAULTS: dict[str, Callable[[Faults, str], object]] = {
    "latency": lambda f, v: f.set_latency(float(v)),
    "error_rate": lambda f, v: f.fail_rate(float(v)),
    "throttle_rate": lambda f, v: f.throttle_rate(float(v)),
    "truncate_rate": lambda f, v: f.truncate_rate(float(v)),
    "html_rate": lambda f, v: f.html_error_rate(float(v)),
    "bad_records_rate": lambda f, v: f.bad_records_rate(float(v)),
    "duplicates": lambda f, v: f.set_duplicates(True),
    "fail_next": lambda f, v: f.fail_next(int(v or 1)),
    "throttle_next": lambda f, v: f.throttle_next(int(v or 1)),
    "truncate_next": lambda f, v: f.truncate_next(int(v or 1)),
    "html_next": lambda f, v: f.html_error_next(int(v or 1)),
    "bad_records_next": lambda f, v: f.bad_records_next(int(v or 1)),
}


def apply_fault(servers: dict[str, SimServer], spec: str) -> None:
    """Switch on one ``--fault`` spec on the named server, or on all of them."""
    head, _, value = spec.partition("=")
    target, _, name = head.rpartition(":")
    if target and target not in servers:
        raise SystemExit(f"--fault {spec}: {target} is not served")
    if name not in _FAULTS:
        raise SystemExit(f"--fault {spec}: unknown fault {name!r} ({FAULT_HELP})")
    for server in [servers[target]] if target else servers.values():
        try:
            _FAULTS[name](server.faults, value)
        except ValueError as exc:
            raise SystemExit(f"--fault {spec}: {exc}") from exc


def serve(args: argparse.Namespace) -> int:
    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else list(SOURCES)
    jsonl: dict[str, Path] = {}
    for spec in args.jsonl or []:
        source, sep, path = spec.partition("=")
        if not sep or source not in SOURCES:
            raise SystemExit(f"--jsonl {spec}: expected SOURCE=PATH with SOURCE one of {', '.join(SOURCES)}")
        jsonl[source] = Path(path)
        if source not in sources:
            sources.append(source)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise SystemExit(f"unknown source(s): {', '.join(unknown)} (known: {', '.join(SOURCES)})")
    if args.only:
        if args.only not in SOURCES:
            raise SystemExit(f"--only {args.only}: unknown source")
        sources = [args.only]
    size = args.records if args.records is not None else args.size
    now = _now(args.now)
    generated = [s for s in sources if s not in jsonl]
    started = time.perf_counter()
    dataset = generate(args.seed, size, now, args.ward_code, only=args.only) if generated else None
    clock = SimClock(now if args.pin_clock else None)
    servers: dict[str, SimServer] = {}
    try:
        for source in sources:
            port = 0 if args.port_base == 0 else args.port_base + PORT_OFFSETS[source]
            server = SimServer(
                source,
                ward_code=args.ward_code,
                port=port,
                clock=clock,
                seed=args.seed,
                session_ttl=args.session_ttl,
                rate_limit=args.rate_limit if source == "residence" else None,
            )
            if source in jsonl:
                server.load_jsonl(jsonl[source])
            elif dataset is not None:
                server.load_dataset(dataset)
            server.store.visible_count(clock.timestamp())  # build the index before listening
            servers[source] = server
        for spec in args.fault or []:
            apply_fault(servers, spec)
        for source, server in servers.items():
            server.start()
            print(f"{source} {server.url} records={len(server.store)}", flush=True)
        print(f"ready in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop.wait(0.5):
            pass
    finally:
        for server in servers.values():
            server.stop()
    return 0


def export(args: argparse.Namespace) -> int:
    dataset = generate(args.seed, args.size, _now(args.now), args.ward_code, only=args.only)
    n = dataset.write_jsonl(args.source, args.out, all_versions=not args.latest)
    print(f"{args.source}: {n} lines written to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.wardsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--size", type=int, default=5000, help="number of dossiers (cases)")
        p.add_argument("--now", help="end of the generated year, ISO 8601 (default: now)")
        p.add_argument("--ward-code", default=DEFAULT_WARD_CODE)
        p.add_argument("--only", help="generate only this source, one record per dossier")

    p_serve = sub.add_parser("serve", help="serve the simulators until SIGTERM/SIGINT")
    common(p_serve)
    p_serve.add_argument("--sources", help="comma-separated (default: all four)")
    p_serve.add_argument("--records", type=int, help="with --only: exactly this many records")
    p_serve.add_argument(
        "--port-base", type=int, default=8101, help="one_stop: BASE, civil_status: BASE+1, ...; 0: free ports"
    )
    p_serve.add_argument(
        "--jsonl", action="append", metavar="SOURCE=PATH", help="serve SOURCE from a JSONL file"
    )
    p_serve.add_argument("--fault", action="append", metavar="SPEC", help=FAULT_HELP)
    p_serve.add_argument("--rate-limit", type=float, help="residence: requests per second before 429")
    p_serve.add_argument("--session-ttl", type=int, default=1800, help="session/token lifetime in seconds")
    p_serve.add_argument("--pin-clock", action="store_true", help="serve as of --now instead of real time")
    p_serve.set_defaults(func=serve)

    p_export = sub.add_parser("export", help="write one source of a generated data set as JSONL")
    common(p_export)
    p_export.add_argument("--source", required=True, choices=SOURCES)
    p_export.add_argument("--out", required=True)
    p_export.add_argument("--latest", action="store_true", help="only each record's latest version")
    p_export.set_defaults(func=export)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
