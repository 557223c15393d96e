"""The ``turnout`` command: one module per command group."""

from __future__ import annotations

import click

from turnout.cli.advise import advise
from turnout.cli.compare import compare
from turnout.cli.config_cmd import config_group
from turnout.cli.db import db_group
from turnout.cli.demo import demo_model
from turnout.cli.keys import keys_group
from turnout.cli.models import models_group
from turnout.cli.serve import serve

__all__ = ["cli", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="turnout")
def cli() -> None:
    """turnout: one gateway for hosted LLM APIs and local models.

    \b
    Examples:
      turnout serve                      # start on 127.0.0.1:8400
      turnout serve --config turnout.yaml --port 9000
      turnout config check               # validate the configuration and exit
      turnout models list                # public model names and where they go
      turnout db upgrade                 # migrate the database (also done at start)
      turnout keys create --owner alice  # an API key (role developer), shown once
      turnout demo-model ./local-demo    # generate the demo model (writes nonsense)
      turnout compare -t local-demo -t openai/gpt-4o-mini --hardware l40s-aws
      turnout advise --hardware l40s-aws --throughput 1200   # over the logged traffic
    """


cli.add_command(serve)
cli.add_command(models_group)
cli.add_command(config_group)
cli.add_command(demo_model)
cli.add_command(db_group)
cli.add_command(keys_group)
cli.add_command(compare)
cli.add_command(advise)


def main() -> None:
    cli(prog_name="turnout")


if __name__ == "__main__":
    main()
