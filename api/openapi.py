"""The API's OpenAPI document as a file: `docs/openapi.json` is what `GET /openapi.json` serves, and
`docs/postman_collection.json` is generated from it (`make openapi` writes both; a test fails when
either falls behind the app).

`python -m api.openapi docs/openapi.json` writes the document; `python -m api.openapi
--finish-postman FILE` drops the random ids the converter gives a collection (so regenerating an
unchanged document changes no line of it) and sets its variables."""

import argparse
import json
from pathlib import Path
from typing import Any

from api.main import create_app
from core.settings import Settings

DOCUMENT = Path("docs/openapi.json")
POSTMAN_COLLECTION = Path("docs/postman_collection.json")
LOCAL_BASE_URL = "http://127.0.0.1:8000"
# Postman gives a collection and its items fresh ids on import; the converter's are random.
_RANDOM_KEYS = frozenset({"id", "_postman_id"})


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The document the app serves. Building it starts nothing (no broker, no store)."""
    return create_app(settings or Settings(_env_file=None)).openapi()


def render(doc: dict[str, Any]) -> str:
    """The file's text: indented, keys in the app's order, one newline at the end."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _without_random_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_random_ids(v) for k, v in value.items() if k not in _RANDOM_KEYS}
    if isinstance(value, list):
        return [_without_random_ids(v) for v in value]
    return value


def finish_postman(path: Path) -> None:
    """Make the converter's collection stable and ready to use: no random ids, `baseUrl` the local
    platform's address (`fk up`), and the `bearerToken` variable the requests' auth names."""
    collection = _without_random_ids(json.loads(path.read_text(encoding="utf-8")))
    collection["variable"] = [
        {"key": "baseUrl", "value": LOCAL_BASE_URL, "type": "string"},
        {
            "key": "bearerToken",
            "value": "",
            "type": "string",
            "description": "A JWT of your organisation: the Token line of `fk up`, or `fk token`.",
        },
    ]
    path.write_text(render(collection), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.openapi", description=__doc__)
    parser.add_argument("output", nargs="?", type=Path, default=DOCUMENT)
    parser.add_argument("--finish-postman", metavar="FILE", type=Path)
    args = parser.parse_args(argv)
    if args.finish_postman is not None:
        finish_postman(args.finish_postman)
        return
    args.output.write_text(render(document()), encoding="utf-8")


if __name__ == "__main__":
    main()
