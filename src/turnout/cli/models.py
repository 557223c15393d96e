"""``turnout models ...``: the public model names and where they go."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.table import Table

from turnout.cli.common import config_option, err_console, load_or_exit, out_console
from turnout.cli.progress import LoadBars
from turnout.cli.remote import API_KEY_OPTION, URL_OPTION, call
from turnout.config import DEMO_NAME


@click.group("models")
def models_group() -> None:
    """List and manage models."""


@models_group.command("list")
@config_option
@click.option(
    "--url",
    default=None,
    help="Ask a running gateway (e.g. http://127.0.0.1:8400) instead of reading the config.",
)
@click.option(
    "--api-key",
    envvar="TURNOUT_API_KEY",
    default=None,
    help="Key for --url (default: $TURNOUT_API_KEY).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(
    config_path: str | None, url: str | None, api_key: str | None, as_json: bool
) -> None:
    """List public model names with their deployments (backend → upstream model).

    \b
    Examples:
      turnout models list
      turnout models list --json
      turnout models list --url http://127.0.0.1:8400 --api-key sk-...
    """
    if url:
        _list_remote(url, api_key, as_json)
        return
    config = load_or_exit(config_path)
    rows = [
        (name, ", ".join(f"{d.backend}/{d.model} (w={d.weight:g})" for d in m.deployments))
        for name, m in config.models.items()
    ]
    rows += [
        (name, f"local {spec.engine} model at {spec.path}")
        for name, spec in config.local.models.items()
    ]
    if config.demo_enabled:
        rows.append((DEMO_NAME, "local demo model (random weights, writes nonsense)"))
    rows += [
        (f"{b}/*", f"any model on backend {b!r}")
        for b, s in config.backends.items()
        if s.passthrough
    ]
    if as_json:
        click.echo(json.dumps([{"model": n, "deployments": d} for n, d in rows], indent=2))
        return
    table = Table("model", "deployments", title="turnout models")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)
    if not rows:
        out_console.print(
            "No models: add backends and models to turnout.yaml, or export a "
            "provider key such as OPENAI_API_KEY."
        )


_POLL = 0.2


@models_group.command("deploy")
@click.argument("name")
@click.argument("path")
@click.option(
    "--engine",
    type=click.Choice(["transformers", "llama_cpp"]),
    default="transformers",
    show_default=True,
)
@click.option(
    "--quantization",
    type=click.Choice(["none", "int8", "int4"]),
    default="none",
    show_default=True,
    help="transformers engine: int8 (CPU or GPU) or int4 (GPU, bitsandbytes).",
)
@click.option("--option", "options", multiple=True, help="Engine option KEY=VALUE (repeatable).")
@URL_OPTION
@API_KEY_OPTION
def deploy(
    name: str,
    path: str,
    engine: str,
    quantization: str,
    options: tuple[str, ...],
    url: str,
    api_key: str | None,
) -> None:
    """Load a local model into a running gateway and serve it as NAME.

    A progress bar follows the load (download, weights, warm-up) until the model is loaded.

    PATH is a model directory (transformers, safetensors weights) or a .gguf file
    (llama_cpp), inside the gateway's local.model_dirs; or a Hugging Face Hub model,
    hf:ORG/NAME[@REVISION] (for llama_cpp also hf:ORG/NAME:TAG or hf:ORG/NAME/FILE.gguf).

    \b
    Examples:
      turnout models deploy demo-copy local-demo
      turnout models deploy qwen /srv/models/qwen2.5-0.5b --quantization int8
      turnout models deploy tiny tiny.gguf --engine llama_cpp --url http://10.0.0.5:8400
      turnout models deploy qwen-q4 hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M --engine llama_cpp
    """
    parsed: dict[str, object] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        parsed[key] = _number_or_text(value)
    body = {
        "name": name,
        "path": path,
        "engine": engine,
        "options": parsed,
        "quantization": quantization,
    }
    state = call(url, api_key, "/admin/models?wait=false", method="POST", body=body, timeout=60)
    state = _follow_load(url, api_key, name, state)
    if state.get("status") == "failed":
        message = (state.get("error") or {}).get("message", "unknown error")
        err_console.print(f"[red]{url} could not load {name}:[/] {message}")
        raise SystemExit(1)
    memory = state.get("stats", {}).get("memory_bytes", 0) / 1e6
    quantized = f", {quantization}" if quantization != "none" else ""
    out_console.print(f"[green]deployed[/] {name} ({engine}{quantized}, {memory:.1f} MB)")


def _follow_load(url: str, api_key: str | None, name: str, state: Any) -> Any:
    """Poll the gateway's state of ``name`` while it loads, drawing its progress."""
    bars = LoadBars(err_console)
    try:
        while state.get("status") == "loading":
            if state.get("progress"):
                bars.update(state["progress"])
            time.sleep(_POLL)
            listing = call(url, api_key, "/admin/models")
            state = next((m for m in listing.get("data", []) if m.get("name") == name), None)
            if state is None:
                err_console.print(f"[red]{url} no longer lists {name}[/]; was it unloaded?")
                raise SystemExit(1)
        stage = "failed" if state.get("status") == "failed" else "loaded"
        bars.update({"name": name, "stage": stage, "done": 0, "total": None, "unit": None})
    finally:
        bars.stop()
    return state


@models_group.command("unload")
@click.argument("name")
@URL_OPTION
@API_KEY_OPTION
def unload(name: str, url: str, api_key: str | None) -> None:
    """Unload a local model from a running gateway (it loads again on its next request).

    \b
    Examples:
      turnout models unload demo-copy
    """
    result = call(url, api_key, f"/admin/models/{name}", method="DELETE")
    state = "unloaded" if result.get("unloaded") else "was not loaded"
    out_console.print(f"{name}: {state}")


def _number_or_text(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _list_remote(url: str, api_key: str | None, as_json: bool) -> None:
    data = call(url, api_key, "/v1/models")
    names = [m["id"] for m in data.get("data", [])]
    if as_json:
        click.echo(json.dumps(names, indent=2))
    else:
        for name in names:
            out_console.print(name)
