"""``turnout demo-model``: generate the demo model."""

from __future__ import annotations

from pathlib import Path

import click

from turnout.cli.common import err_console, out_console


@click.command("demo-model")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--bench",
    is_flag=True,
    help="The benchmark shape (~70M parameters) instead of the tiny default.",
)
def demo_model(directory: Path | None, bench: bool) -> None:
    """Generate turnout's demo model into DIRECTORY (default ./local-demo).

    A Llama-architecture model with random weights, a trained tokenizer and a chat template,
    the same bytes every time, no download. It writes nonsense: it is for trying and
    testing local inference, not for answers.

    \b
    Examples:
      turnout demo-model
      turnout demo-model /srv/models/local-demo
      turnout demo-model --bench /tmp/bench-model
    """
    try:
        from turnout.backends.local.demo_model import DemoShape, generate_demo_model
    except ImportError:
        err_console.print(
            "The demo model needs the transformers extra: pip install 'turnout[transformers]'"
        )
        raise SystemExit(2) from None
    target = directory or Path("local-demo")
    shape = DemoShape.bench() if bench else DemoShape()
    with err_console.status(f"generating the demo model in {target} ..."):
        path = generate_demo_model(target, shape)
    files = sorted(p.name for p in path.iterdir())
    out_console.print(f"[green]demo model written[/] to {path}: {', '.join(files)}")
    out_console.print("It has random weights and writes nonsense.")
