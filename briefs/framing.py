"""How untrusted text reaches the model: the brand's request and every tool result travel as JSON
inside labelled data blocks that no value can close (`<`, `>` and `&` are escaped inside the JSON),
and are read back from a conversation the same way."""

import re
from typing import Any

import orjson

TOOL_OPEN = '<tool_data trust="untrusted">'
TOOL_CLOSE = "</tool_data>"
_TOOL_BLOCK = re.compile(re.escape(TOOL_OPEN) + r"\n(.*)\n" + re.escape(TOOL_CLOSE), re.S)


def escaped_json(value: Any, *, indent: bool = False) -> str:
    """JSON in which no string can spell a tag: the escapes are still valid JSON."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS if indent else 0
    encoded = orjson.dumps(value, option=option).decode()
    return encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def tool_block(result: Any) -> str:
    """A tool result (or a tool error) as the content of a `tool` message."""
    return f"{TOOL_OPEN}\n{escaped_json(result)}\n{TOOL_CLOSE}"


def read_tool_block(content: str) -> Any:
    """The value `tool_block` framed; ValueError when `content` is no such block."""
    found = _TOOL_BLOCK.fullmatch(content)
    if found is None:
        raise ValueError("not a tool data block")
    return orjson.loads(found.group(1))
