"""structlog set-up: console lines in development, one JSON object per line in containers, for
our own log lines and for those the libraries (faust, mode, aiokafka, uvicorn) write through the
standard library's `logging`."""

import logging
import logging.config
import sys
from typing import Any

import structlog

LIBRARY_LEVEL = "WARNING"
"""The libraries' log lines below this level are dropped: they are chatty at INFO."""


def _renderer(fmt: str) -> structlog.types.Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


def _shared() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def library_logging(fmt: str = "console") -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration that renders the standard library's records
    as structlog renders ours (`fmt` "json": one JSON object per line, the traceback of an
    exception inside it), with the logger's name, on stderr, at `LIBRARY_LEVEL` and above.

    `configure_logging` applies it; a faust `Worker` takes it as `logging_config`, since the
    worker replaces the root logger's handlers with its own when it starts. Loggers created
    before it is applied keep working (`disable_existing_loggers` is off).
    """
    formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": [*_shared(), structlog.stdlib.add_logger_name],
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(fmt),
        ],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "structlog",
            }
        },
        "root": {"level": LIBRARY_LEVEL, "handlers": ["stderr"]},
    }


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """Our loggers (structlog) at `level`; the libraries' through `library_logging(fmt)`.

    Servers must leave logging as it is set here: uvicorn with `log_config=None` (its own
    configuration would give its loggers plain-text handlers of their own).
    """
    structlog.configure(
        processors=[*_shared(), structlog.processors.format_exc_info, _renderer(fmt)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(library_logging(fmt))
