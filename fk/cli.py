"""`fk`: the platform's command line (up, init, worker, api, replay, etl, generate, token)."""

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from core.settings import Settings, get_settings

if TYPE_CHECKING:
    import faust
    import httpx
    import uvicorn
    from fastapi import FastAPI
    from pydantic import ValidationError

    from api.main import Lifespan
    from etl.loader import Outputs


def _settings() -> Settings:
    from core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return settings


def cmd_token(args: argparse.Namespace) -> int:
    from core.auth import issue_token

    settings = get_settings()
    ttl = args.ttl_hours * 3600 if args.ttl_hours else settings.dev_token_ttl_hours * 3600
    print(
        issue_token(
            settings.jwt_secret,
            org=args.org,
            subject=args.subject,
            ttl_seconds=ttl,
            issuer=settings.jwt_issuer,
        )
    )
    return 0


async def _replay_demo(settings: Settings) -> None:
    from core.kafka import client_security
    from streams.demo import demo_events
    from streams.replay import paced, produce

    await produce(
        settings.bootstrap,
        settings.engagement_topic,
        paced(demo_events(), rate=None, speedup=None),
        security=client_security(settings),
    )


async def _serve(
    settings: Settings, *, demo: bool, worker: bool = True, banner: Sequence[str] = ()
) -> None:
    """Run the API (and, with `worker`, the stream worker) until stopped; `banner` is printed
    once the API is ready (see `_announce_when_ready`)."""
    import uvicorn
    from aiokafka import AIOKafkaProducer
    from faust.contrib.asgi import faust_app_running

    from api.main import create_app
    from core.clickhouse import Store, StoreError
    from core.kafka import client_security, ensure_topics
    from core.ledger import CampaignLedger
    from core.rollups import EngagementRollups
    from streams.app import create_faust_app
    from streams.topics import platform_topics

    await ensure_topics(
        settings.bootstrap, platform_topics(settings), security=client_security(settings)
    )
    store = await asyncio.to_thread(Store.from_settings, settings)
    # One command client for the API and the worker's clock.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", linger_ms=2, **client_security(settings)
    )
    # The embedded broker keeps messages in memory only: acknowledge writes once stored.
    ack_after_store = worker and settings.embedded_broker and settings.embedded_ack_after_store
    # chDB opens its data path in one process only: this ledger then writes every campaign.
    ledger = CampaignLedger(
        settings,
        store,
        producer,
        ack_after_store=ack_after_store,
        sole_writer=settings.store_url.startswith("chdb:"),
    )
    try:
        await producer.start()
        lifespans: list[Lifespan] = []
        # The worker keeps the metrics windows in memory; the API in this process reads them.
        rollups = EngagementRollups() if worker else None
        if worker:
            faust_app = create_faust_app(settings, store, ledger=ledger, rollups=rollups)
            lifespans.append(lambda: faust_app_running(faust_app))
        if demo:

            @asynccontextmanager
            async def demo_replay() -> AsyncIterator[None]:
                task = asyncio.create_task(_replay_demo(settings))
                yield
                task.cancel()

            lifespans.append(demo_replay)
        api = create_app(
            settings,
            store=store,
            ledger=ledger,
            lifespans=lifespans,
            writers_in_process=worker,
            ack_after_store=ack_after_store,
            rollups=rollups,
        )
        config = uvicorn.Config(
            api,
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            # Leave logging as `configure_logging` set it: uvicorn's lines go through structlog.
            log_config=None,
            lifespan="on",
            access_log=False,
        )
        server = uvicorn.Server(config)
        # The store's threads and clients open while the worker joins its groups.
        warmed = asyncio.create_task(asyncio.to_thread(store.warm))
        frozen = asyncio.create_task(_freeze_once_started(server, api))
        announced = asyncio.create_task(
            _announce_when_ready(server, settings, banner, worker=worker, demo=demo)
        )
        try:
            await server.serve()
        finally:
            frozen.cancel()
            announced.cancel()
            with contextlib.suppress(StoreError):
                await warmed
    finally:
        await ledger.stop()
        await producer.stop()
        store.close()


async def _freeze_once_started(server: "uvicorn.Server", api: "FastAPI") -> None:
    """Once the platform has started, exempt every object then alive (modules, schemas, the
    rollups loaded from the store) from garbage collection: each full collection walked them
    all, pausing the process for up to a quarter of a second under load. Again once the
    start's scoring of rankings is done: at 10M events it leaves ~640,000 objects (every
    creator of every warmed scope), and a full collection over them paused the process for
    0.4-0.8 s. (Objects frozen are still freed when no longer referenced; only cycles among
    them would stay, and scorings hold none.)"""
    while not server.started:
        await asyncio.sleep(0.1)
    import gc

    import structlog

    gc.freeze()
    structlog.get_logger("cli").info("up.gc_frozen", objects=gc.get_freeze_count())
    warming = getattr(api.state, "warming", None)
    if warming is not None:
        await asyncio.wait({warming})  # done, failed or cancelled alike
        gc.freeze()
        structlog.get_logger("cli").info("up.gc_frozen", objects=gc.get_freeze_count())


_READY_PATIENCE_SECONDS = 60.0


async def _announce_when_ready(
    server: "uvicorn.Server", settings: Settings, banner: Sequence[str], *, worker: bool, demo: bool
) -> None:
    """Print `banner` once `/readyz` answers 200 and, when the worker runs in this process, the
    engagement consumer owns its partitions: what the banner's cURL lines ask for then answers
    at once (`POST /events` waits for the worker to store the events). With `demo`, the demo's
    campaigns are created first."""
    if not banner:
        return
    import httpx
    from prometheus_client import REGISTRY

    while not server.started:
        await asyncio.sleep(0.1)
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    async with httpx.AsyncClient(base_url=f"http://{host}:{settings.api_port}", timeout=10) as http:
        waiting_since = time.monotonic()
        while True:
            try:
                answer = await http.get("/readyz")
                ready, state = answer.status_code == 200, answer.text
            except httpx.HTTPError as exc:
                ready, state = False, type(exc).__name__
            # The worker is ready when its engagement consumer and its campaign agent both own
            # partitions (commands sent before wait for the agent).
            assigned = min(
                REGISTRY.get_sample_value("fk_pipeline_assigned_partitions") or 0,
                REGISTRY.get_sample_value("fk_campaign_agent_partitions") or 0,
            )
            if ready and (assigned > 0 or not worker):
                break
            if time.monotonic() - waiting_since > _READY_PATIENCE_SECONDS:
                # Say why nothing is printed yet rather than wait in silence.
                detail = state if not ready else "the worker owns no partition yet"
                print(f"fk up: not ready yet: {detail}", file=sys.stderr, flush=True)
                waiting_since = time.monotonic()
            await asyncio.sleep(0.2)
        if demo:
            await _create_demo_campaigns(http, settings)
    print("\n".join(banner), file=sys.stderr, flush=True)


async def _create_demo_campaigns(http: "httpx.AsyncClient", settings: Settings) -> None:
    """Create the demo's campaigns under their ids in the default organisation (the demo events'
    own), through the API as any client would; a campaign kept from an earlier run is left as
    it is (409)."""
    import httpx
    import structlog

    from core.auth import issue_token
    from streams.demo import CAMPAIGN_NAMES

    token = issue_token(settings.jwt_secret, org=settings.default_org, issuer=settings.jwt_issuer)
    headers = {"Authorization": f"Bearer {token}"}
    for campaign_id, name in CAMPAIGN_NAMES.items():
        body = {"id": campaign_id, "name": name, "brand": "Demo brand"}
        try:
            response = await http.post("/campaigns", json=body, headers=headers)
        except httpx.HTTPError as exc:
            structlog.get_logger("cli").warning("up.demo_campaign_failed", error=str(exc))
            return
        if response.status_code not in (201, 409):
            structlog.get_logger("cli").warning(
                "up.demo_campaign_failed", campaign=campaign_id, status=response.status_code
            )


def up_banner(settings: Settings, token: str, *, embedded: bool, demo: bool) -> list[str]:
    """Where everything listens, one per line (`API`, `Kafka`, `Store`, `Token`: outside tools
    read them), then shell lines that work when pasted: the token exported first, and the
    header in double quotes so `$TOKEN` expands."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    first = f"{base}/campaigns/cmp_diwali_24/metrics" if demo else f"{base}/campaigns"
    return [
        f"API      {base}  (docs: {base}/docs, dashboard: {base}/dashboard)",
        f"Kafka    {settings.bootstrap}{' (embedded)' if embedded else ''}",
        f"Store    {settings.store_url}",
        f"Token    {token}",
        "",
        "Try it, in another shell:",
        f"  export TOKEN={token}",
        f'  curl -H "Authorization: Bearer $TOKEN" {first}',
        "",
    ]


def cmd_up(args: argparse.Namespace) -> int:
    from core.auth import issue_token
    from core.kafka import EmbeddedBroker

    settings = _settings()
    broker = (
        EmbeddedBroker(
            settings.kafka_embedded_port, memory_warn_mb=settings.embedded_broker_warn_mb
        )
        if settings.embedded_broker
        else None
    )
    if broker is not None:
        broker.start()
    token = issue_token(
        settings.jwt_secret,
        org=args.org,
        ttl_seconds=settings.dev_token_ttl_hours * 3600,
        issuer=settings.jwt_issuer,
    )
    banner = up_banner(settings, token, embedded=broker is not None, demo=args.demo)
    print(
        "Starting the platform; where it listens is printed once the API is ready.", file=sys.stderr
    )
    try:
        return _run_or_explain(_serve(settings, demo=args.demo, banner=banner))
    finally:
        if broker is not None:
            broker.stop()


class Initialised(NamedTuple):
    topics: list[str]
    migrations: list[str]
    # The read-only user provisioned for Grafana; None on chDB (no users) or without a password.
    reader: str | None


async def initialise(settings: Settings, *, timeout: float = 60.0) -> Initialised:
    """Create the platform's topics with their explicit partition counts, apply pending store
    migrations and, on a ClickHouse server with FK_CLICKHOUSE_READER_PASSWORD set, provision
    the read-only reader Grafana queries as; every step is idempotent."""
    from core.clickhouse import Store
    from core.kafka import client_security, ensure_topics
    from core.reader import provision_reader
    from streams.topics import platform_topics

    topics = platform_topics(settings)
    await ensure_topics(
        settings.bootstrap, topics, timeout=timeout, security=client_security(settings)
    )
    store = await asyncio.to_thread(Store.from_settings, settings, migrate=False)
    reader = None
    try:
        applied = await asyncio.to_thread(store.migrate, default_org=settings.default_org)
        # chDB (embedded) has no users: it refuses CREATE USER and GRANT.
        if settings.clickhouse_reader_password and not settings.store_url.startswith("chdb://"):
            await asyncio.to_thread(
                provision_reader,
                store,
                settings.clickhouse_reader_user,
                settings.clickhouse_reader_password,
            )
            reader = settings.clickhouse_reader_user
    finally:
        store.close()
    return Initialised([t.name for t in topics], applied, reader)


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.embedded_broker:
        print("fk init: FK_KAFKA_BOOTSTRAP must name the Kafka cluster to prepare", file=sys.stderr)
        return 2
    reader_password = settings.clickhouse_reader_password
    if reader_password and settings.clickhouse_reader_user == settings.clickhouse_user:
        print(
            "fk init: FK_CLICKHOUSE_READER_USER must not be FK_CLICKHOUSE_USER (the platform's"
            " own user would become read-only)",
            file=sys.stderr,
        )
        return 2
    outcome: list[Initialised] = []

    async def run() -> None:
        outcome.append(await initialise(settings, timeout=args.timeout))

    status = _run_or_explain(run())
    if status != 0:
        return status
    if not outcome:  # interrupted before it finished
        return 130
    done = outcome[0]
    print(f"topics ready: {', '.join(done.topics)}")
    print(f"migrations applied: {', '.join(done.migrations) or 'none pending'}")
    if done.reader:
        print(f"read-only user ready: {done.reader}")
    elif settings.store_url.startswith("chdb://"):
        print("read-only user: none (the embedded store has no users)")
    else:
        print("read-only user: none (FK_CLICKHOUSE_READER_PASSWORD is not set)")
    return 0


def faust_worker(app: "faust.App", log_format: str) -> "faust.Worker":
    """The worker of `fk worker`. It replaces the root logger's handlers when it starts: it gets
    ours, so its lines and its libraries' go through structlog (`FK_LOG_FORMAT`). Without its
    start-up spinner, which writes terminal escape codes to stdout even when that is no terminal
    and turns the root logger to DEBUG to spin on every record."""
    import faust

    from core.logging import library_logging

    worker = faust.Worker(
        app, loglevel="WARNING", quiet=True, logging_config=library_logging(log_format)
    )
    worker.spinner = None
    return worker


def cmd_worker(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from core.clickhouse import Store
    from core.metrics import watch_event_loop
    from streams.app import create_faust_app

    settings = _settings()
    store = Store.from_settings(settings)
    store.warm()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=settings.api_host)
    app = create_faust_app(settings, store)

    @app.task  # type: ignore[untyped-decorator]
    async def watch() -> None:  # fk up's API watches its own loop
        await watch_event_loop()

    worker = faust_worker(app, settings.log_format)
    try:
        worker.execute_from_commandline()
    finally:
        store.close()
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    settings = _settings()
    return _run_or_explain(_serve(settings, demo=False, worker=False))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (it comes with uvicorn[standard]): the platform's one
    event loop serves HTTP, Kafka and the store's threads, and spent a sixth of its time in the
    standard loop's socket writes under load."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run_or_explain(main: Coroutine[None, None, None]) -> int:
    """Run the platform until Ctrl-C; a dependency that cannot be reached at start-up is one clear
    line and exit status 1, not a traceback."""
    from aiokafka.errors import KafkaError

    from core.clickhouse import StoreError

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main)
    except KeyboardInterrupt:
        pass
    except (StoreError, KafkaError, TimeoutError, OSError) as exc:
        print(f"fk: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _existing_file(name: str, command: str) -> Path | None:
    """`name` as a path, or None (said on stderr) when it is not a file."""
    path = Path(name)
    if path.is_file():
        return path
    print(f"fk {command}: no such file: {path}", file=sys.stderr)
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.kafka import client_security
    from streams.replay import paced, produce, read_file

    settings = _settings()
    path = _existing_file(args.file, "replay")
    if path is None:
        return 2
    topic = args.topic or settings.engagement_topic
    with tqdm(unit="ev", desc=f"replay → {topic}", file=sys.stderr) as bar:
        sent = asyncio.run(
            produce(
                settings.bootstrap,
                topic,
                paced(read_file(path), rate=args.rate, speedup=args.speedup),
                on_progress=bar.update,
                security=client_security(settings),
            )
        )
    print(f"sent {sent} messages to {topic}")
    return 0


def _platform_answers(settings: Settings) -> str | None:
    """The running platform's base URL when its API answers /healthz, else None."""
    import httpx

    base = f"http://{settings.api_host}:{settings.api_port}"
    try:
        if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
            return base
    except httpx.HTTPError:
        pass
    return None


def _etl_through_api(
    base: str, settings: Settings, path: Path, outputs: "Outputs", org: str
) -> int:
    import httpx
    import orjson

    from core.auth import issue_token

    token = issue_token(settings.jwt_secret, org=org, issuer=settings.jwt_issuer)
    headers = {"Authorization": f"Bearer {token}"}
    with path.open("rb") as fh, httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        response = http.post("/etl/uploads", files={"file": (path.name, fh, "text/csv")})
        if response.status_code != 200:
            detail = response.json().get("detail") if response.content else None
            print(
                f"fk etl: {response.status_code} {detail or response.reason_phrase}",
                file=sys.stderr,
            )
            return 2
        report = response.json()
        if report.get("rejectedFile"):
            rejected = http.get(report["rejectedFile"])
            rejected.raise_for_status()
            outputs.rejected.write_bytes(rejected.content)
            report["rejectedFile"] = str(outputs.rejected)
    outputs.report.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_etl(args: argparse.Namespace) -> int:
    import orjson

    from etl.loader import LoadRefused, Outputs, load_file

    settings = _settings()
    path = _existing_file(args.file, "etl")
    if path is None:
        return 2
    outputs = Outputs.beside(path, Path(args.out) if args.out else None)
    base = None if args.direct else _platform_answers(settings)
    if base is not None:
        # The running platform owns the chDB path: go through it rather than open it twice.
        print(f"fk etl: loading through the running platform at {base}", file=sys.stderr)
        return _etl_through_api(base, settings, path, outputs, args.org)

    from core.clickhouse import Store

    store = Store.from_settings(settings)
    try:
        report = load_file(
            store,
            path,
            outputs,
            org=settings.default_org,
            max_errors=settings.etl_max_reported_errors,
        )
    except LoadRefused as exc:
        print(f"fk etl: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(orjson.dumps(report.model_dump(by_alias=True), option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    import orjson

    from core.clickhouse import Store, StoreError
    from streams.rebuild import RebuildRefused, rebuild

    settings = _settings()
    url = args.store or settings.store_url
    database = args.database
    if url == settings.store_url and database == settings.clickhouse_database:
        print(
            "fk rebuild: --database must name a new database, not FK_CLICKHOUSE_DATABASE",
            file=sys.stderr,
        )
        return 2
    if url.startswith("chdb://") and url == settings.store_url and settings.embedded_broker:
        # The embedded broker's topics live only while `fk up` runs, and it holds this path.
        print(
            "fk rebuild: `fk up` holds the embedded store; while it runs, rebuild into another"
            " path: fk rebuild --store chdb:///abs/path --database NAME",
            file=sys.stderr,
        )
        return 2
    try:
        target = Store.from_settings(settings, url=url, database=database)
    except StoreError as exc:
        print(f"fk rebuild: {exc}", file=sys.stderr)
        return 1
    outcome = []

    async def run() -> None:
        outcome.append(
            await rebuild(
                settings,
                target,
                engagement=not args.campaigns_only,
                allow_partial=args.allow_partial,
                timeout=args.timeout,
            )
        )

    try:
        status = _run_or_explain(run())
    except RebuildRefused as exc:
        print(f"fk rebuild: {exc}", file=sys.stderr)
        return 2
    finally:
        target.close()
    if status != 0 or not outcome:
        return status or 130
    report = outcome[0]
    print(
        orjson.dumps(
            {
                "store": url,
                "database": report.database,
                "campaignEvents": report.campaign_events,
                "campaignVersions": report.campaign_versions,
                "insights": report.insights,
                "engagementRecords": report.engagement_records,
                "skipped": report.skipped,
                "partial": report.partial,
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from etl.generate import write_sample

    out = Path(args.out) if args.out else get_settings().data_dir / "performance.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_sample(out, args.rows, seed=args.seed, invalid_rate=args.invalid_rate)
    print(f"wrote {args.rows} rows to {out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the embedded platform: broker, worker, API, store")
    up.add_argument("--demo", action="store_true", help="replay the bundled demo dataset")
    up.add_argument("--org", default="demo", help="organisation of the printed dev token")
    up.set_defaults(func=cmd_up)

    init = sub.add_parser(
        "init", help="create topics (explicit partitions) and apply store migrations, then exit"
    )
    init.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the broker to answer"
    )
    init.set_defaults(func=cmd_init)

    worker = sub.add_parser("worker", help="run a stream worker against FK_KAFKA_BOOTSTRAP")
    worker.add_argument("--metrics-port", type=int, default=9100, help="Prometheus port (0 = none)")
    worker.set_defaults(func=cmd_worker)

    api = sub.add_parser("api", help="run the HTTP API only")
    api.set_defaults(func=cmd_api)

    replay = sub.add_parser("replay", help="produce a JSONL or performance-CSV file into Kafka")
    replay.add_argument("file")
    replay.add_argument("--rate", type=float, default=None, help="events per second at most")
    replay.add_argument(
        "--speedup", type=float, default=None, help="pace by recorded event time, N times faster"
    )
    replay.add_argument("--topic", default=None, help="default: engagement-events")
    replay.set_defaults(func=cmd_replay)

    etl = sub.add_parser("etl", help="load a performance CSV; prints the load report")
    etl.add_argument("file")
    etl.add_argument("--out", default=None, help="where the report and rejected rows go")
    etl.add_argument("--org", default="demo", help="organisation when going through the API")
    etl.add_argument(
        "--direct", action="store_true", help="open the store even if a platform answers"
    )
    etl.set_defaults(func=cmd_etl)

    rebuild = sub.add_parser(
        "rebuild", help="replay campaign-events and engagement-events into a fresh database"
    )
    rebuild.add_argument("--database", required=True, help="the new database to fill")
    rebuild.add_argument(
        "--store", default=None, help="chdb:///abs/path or http(s)://… (default: FK_CLICKHOUSE_URL)"
    )
    rebuild.add_argument(
        "--campaigns-only", action="store_true", help="replay campaign-events only"
    )
    rebuild.add_argument(
        "--allow-partial",
        action="store_true",
        help="rebuild even when retention removed a topic's oldest messages",
    )
    rebuild.add_argument("--timeout", type=float, default=3600.0, help="seconds at most")
    rebuild.set_defaults(func=cmd_rebuild)

    generate = sub.add_parser("generate", help="write a realistic sample performance CSV")
    generate.add_argument("rows", type=int)
    generate.add_argument(
        "out", nargs="?", default=None, help="default: performance.csv under FK_DATA_DIR (data/)"
    )
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument(
        "--invalid-rate", type=float, default=0.0, help="share of rows with a rejection reason"
    )
    generate.set_defaults(func=cmd_generate)

    token = sub.add_parser("token", help="print a development JWT")
    token.add_argument("--org", default="demo")
    token.add_argument("--subject", default="dev")
    token.add_argument("--ttl-hours", type=int, default=None)
    token.set_defaults(func=cmd_token)
    return parser


def _settings_problems(exc: "ValidationError") -> str:
    """One line per problem, named as the variable to fix; never the value (it may be a secret)."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {'FK_' + name + ': ' if name else ''}{message}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        get_settings()
    except ValidationError as exc:
        print(
            f"fk: refusing to start, the settings are invalid:\n{_settings_problems(exc)}",
            file=sys.stderr,
        )
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
