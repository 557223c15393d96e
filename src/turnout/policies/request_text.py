"""The texts a request carries to a model, and edits of them that never touch the original.

:func:`edit_texts` applies one function to every text a request body sends to a model: chat
``messages`` (string contents, ``text`` parts, tool-call and legacy function-call
arguments, tool results), completions ``prompt``, embeddings and predict ``input``, and
``system`` (predict, Anthropic-style bodies, with their ``tool_use`` inputs and
``tool_result`` contents). Token-id lists, ``name`` fields, images and tool definitions are
left alone.

The function returns a replacement text, or None to leave the text as it is. The result is
a new body, built by shallow copies along the changed paths only, or None when nothing
changed: the caller's body is never mutated. Shapes that are not what the APIs define are
skipped where they occur, never an error; JSON nested beyond reason is walked without
recursion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["Edit", "edit_texts"]

#: edits one text of a request: returns its replacement, or None to leave it as it is
Edit = Callable[[str], "str | None"]


def edit_texts(body: Any, edit: Edit) -> Any:
    """``body`` with ``edit`` applied to each of its texts, or None when nothing changed."""
    if not isinstance(body, dict):
        return None
    changes: dict[str, Any] = {}
    if "messages" in body:
        _put(changes, "messages", _edit_list(body["messages"], _edit_message, edit))
    for key in ("prompt", "input"):
        if key in body:
            _put(changes, key, _edit_texts(body[key], edit))
    if "system" in body:
        _put(changes, "system", _edit_content(body["system"], edit))
    return {**body, **changes} if changes else None


def _put(changes: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        changes[key] = value


def _edit_list(items: Any, edit_item: Callable[[Any, Edit], Any], edit: Edit) -> Any:
    if not isinstance(items, list):
        return None
    new: list[Any] | None = None
    for i, item in enumerate(items):
        replacement = edit_item(item, edit)
        if replacement is not None:
            if new is None:
                new = list(items)
            new[i] = replacement
    return new


def _edit_texts(value: Any, edit: Edit) -> Any:
    """A string or a list of strings (token-id lists are skipped)."""
    if isinstance(value, str):
        return edit(value)
    return _edit_list(value, lambda item, e: e(item) if isinstance(item, str) else None, edit)


def _edit_message(message: Any, edit: Edit) -> Any:
    if not isinstance(message, dict):
        return None
    changes: dict[str, Any] = {}
    if "content" in message:
        _put(changes, "content", _edit_content(message["content"], edit))
    if "tool_calls" in message:
        _put(changes, "tool_calls", _edit_list(message["tool_calls"], _edit_call, edit))
    if "function_call" in message:
        _put(changes, "function_call", _edit_function(message["function_call"], edit))
    return {**message, **changes} if changes else None


def _edit_content(content: Any, edit: Edit) -> Any:
    """A string, or a list of parts: OpenAI ``text`` parts; Anthropic ``text``,
    ``tool_use`` (its ``input``) and ``tool_result`` (its ``content``) blocks."""
    if isinstance(content, str):
        return edit(content)
    return _edit_list(content, _edit_part, edit)


def _edit_part(part: Any, edit: Edit) -> Any:
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return _replace(part, "text", edit(part["text"]))
    if kind == "tool_use" and "input" in part:
        return _replace(part, "input", _edit_object(part["input"], edit))
    if kind == "tool_result" and "content" in part:
        content = part["content"]
        if isinstance(content, str):
            return _replace(part, "content", edit(content))
        return _replace(part, "content", _edit_list(content, _edit_text_part, edit))
    return None


def _edit_text_part(part: Any, edit: Edit) -> Any:
    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
        return _replace(part, "text", edit(part["text"]))
    return None


def _replace(mapping: dict[str, Any], key: str, value: Any) -> Any:
    return None if value is None else {**mapping, key: value}


def _edit_call(call: Any, edit: Edit) -> Any:
    if not isinstance(call, dict):
        return None
    return _replace(call, "function", _edit_function(call.get("function"), edit))


def _edit_function(function: Any, edit: Edit) -> Any:
    if not isinstance(function, dict) or "arguments" not in function:
        return None
    return _replace(function, "arguments", _edit_arguments(function["arguments"], edit))


def _edit_arguments(arguments: Any, edit: Edit) -> Any:
    """Arguments are a JSON text: its strings (and integers, which may be phone or card
    numbers) are edited and the JSON written again, so that it stays valid. Text that is
    not JSON is edited as plain text; an object sent instead of a string is walked."""
    if not isinstance(arguments, str):
        return _edit_object(arguments, edit)
    try:
        value = _loads(arguments)
        new = _edit_json(value, edit, 0)
    except (ValueError, RecursionError, _TooDeep):
        return edit(arguments)
    return None if new is None else _dumps(new)


def _edit_object(value: Any, edit: Edit) -> Any:
    """A JSON value sent as an object. Nested beyond reason, its strings are edited as one
    text, which replaces the whole value when something was found."""
    try:
        return _edit_json(value, edit, 0)
    except _TooDeep:
        return edit("\n".join(_leaves(value)))


def _leaves(value: Any) -> list[str]:
    """The strings and integers in a JSON value, however deep (no recursion)."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(str(item))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(item.values()))
    return out


def _loads(text: str) -> Any:
    # the standard library, not orjson: orjson reads integers beyond 64 bits as floats,
    # and writing them back would change the arguments
    return json.loads(text)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _TooDeep(Exception):
    """JSON nested deeper than _MAX_DEPTH: walked as text instead."""


_MAX_DEPTH = 64


def _edit_json(value: Any, edit: Edit, depth: int) -> Any:
    """A JSON value with its strings and integers edited (an edited integer becomes a
    string). Object keys are names chosen by the tool's schema and are left alone."""
    if isinstance(value, str):
        return edit(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return edit(str(value))
    if depth > _MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, list):
        return _edit_list(value, lambda item, e: _edit_json(item, e, depth + 1), edit)
    if isinstance(value, dict):
        changes = {}
        for key, item in value.items():
            new = _edit_json(item, edit, depth + 1)
            if new is not None:
                changes[key] = new
        return {**value, **changes} if changes else None
    return None
