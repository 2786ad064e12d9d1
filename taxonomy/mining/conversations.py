"""Read conversation JSONL in the three shapes people publish: OpenAI messages, ShareGPT, WildChat.

Only user turns are kept (the assistant's words reveal nothing about the user), and the
conversation id is replaced by a salted hash at once, so no source id reaches any output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from schemas.errors import UserInputError

MAX_CONVERSATION_FILE_BYTES = 512 * 2**20
USER_ROLES = {"user", "human"}
KNOWN_ROLES = USER_ROLES | {"assistant", "gpt", "system", "bot", "chatgpt", "model", "tool", "function"}
# (list field, role key, text key) for each accepted shape, tried in this order.
SHAPES = (("messages", "role", "content"), ("conversation", "role", "content"), ("conversations", "from", "value"))


@dataclass(frozen=True)
class Conversation:
    key: str  # salted hash of file name + id (or line number): stable, never the raw id
    source: str
    user_turns: tuple[str, ...]


def hash_source_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(("populace-mine-v1", *parts)).encode()).hexdigest()[:16]


def read_conversations(paths: list[Path]) -> list[Conversation]:
    """Every conversation in every file, in file and line order; a malformed line is a UserInputError."""
    out: list[Conversation] = []
    for path in paths:
        out.extend(_read_file(Path(path)))
    return out


def _read_file(path: Path) -> list[Conversation]:
    where = str(path)
    if not path.is_file():
        raise UserInputError(where, "<file>", "no such file", "pass JSONL conversation files to --conversations")
    size = path.stat().st_size
    if size == 0:
        raise UserInputError(where, "<file>", "is empty", "pass a JSONL file with one conversation per line")
    if size > MAX_CONVERSATION_FILE_BYTES:
        raise UserInputError(
            where,
            "<file>",
            f"is larger than {MAX_CONVERSATION_FILE_BYTES // 2**20} MiB",
            "split it into smaller JSONL files",
        )
    conversations = []
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            conversations.append(_parse_line(raw, f"{where}:{line_no}", path.name, line_no))
    if not conversations:
        raise UserInputError(where, "<file>", "holds no conversations", "write one JSON object per line")
    return conversations


def _parse_line(raw: bytes, where: str, file_name: str, line_no: int) -> Conversation:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problem = "not UTF-8 text" if b"\x00" in raw or not _is_utf8(raw) else "not valid JSON"
        raise UserInputError(where, "<line>", problem, "write one JSON object per line, UTF-8") from exc
    if not isinstance(record, dict):
        raise UserInputError(where, "<line>", "is not a JSON object", "write one JSON object per line")
    for field, role_key, text_key in SHAPES:
        if field in record:
            turns = _user_turns(record[field], where, field, role_key, text_key)
            break
    else:
        raise UserInputError(
            where,
            "messages",
            "no 'messages', 'conversation' or 'conversations' list",
            "use OpenAI messages [{role, content}], WildChat or ShareGPT [{from, value}]",
        )
    raw_id = record.get("id", record.get("conversation_hash", record.get("conversation_id", f"line{line_no}")))
    given = record.get("source")
    source = given if isinstance(given, str) else file_name
    return Conversation(key=hash_source_id(file_name, str(raw_id)), source=source, user_turns=turns)


def _user_turns(turns: object, where: str, field: str, role_key: str, text_key: str) -> tuple[str, ...]:
    if not isinstance(turns, list):
        raise UserInputError(where, field, "is not a list", f"make '{field}' a list of turns")
    kept = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise UserInputError(
                where, f"{field}.{i}", "is not an object", f"write each turn as {{{role_key}, {text_key}}}"
            )
        role = turn.get(role_key)
        if not isinstance(role, str) or role.lower() not in KNOWN_ROLES:
            raise UserInputError(
                where, f"{field}.{i}.{role_key}", f"unknown role {role!r}", f"use one of {sorted(KNOWN_ROLES)}"
            )
        text = turn.get(text_key)
        if text is None:
            continue  # tool calls and refusals carry no text
        if not isinstance(text, str):
            raise UserInputError(where, f"{field}.{i}.{text_key}", "is not a string", "write the turn text as a string")
        if role.lower() in USER_ROLES and text.strip():
            kept.append(text)
    return tuple(kept)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
