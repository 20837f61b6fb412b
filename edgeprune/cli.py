"""Thin, lazy command line: ``edgeprune --help`` imports neither torch nor tensorflow.

Each subcommand lives in ``edgeprune/commands/<name>.py`` as a click command called ``command``.
Library errors (:class:`edgeprune.errors.EdgepruneError`) become one line and their exit code.
"""
from __future__ import annotations

import importlib
import sys

import click

# name -> (module, one-line help shown without importing the module)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("edgeprune.commands.demo", "Run the offline demo on the packaged MiniLM-L6."),
    "finetune": ("edgeprune.commands.finetune", "Fine-tune a dense model on a GLUE task."),
    "eval": ("edgeprune.commands.evaluate", "Evaluate a checkpoint on a GLUE task."),
    "compress": ("edgeprune.commands.compress", "Block-structured pruning (reweighted group Lasso)."),
    "export": ("edgeprune.commands.export", "Export a checkpoint to ONNX or TFLite, verified."),
    "profile": ("edgeprune.commands.profile", "Latency, memory and size on host, Pi, Android, qemu."),
    "targets": ("edgeprune.commands.targets", "List the device targets."),
    "check": ("edgeprune.commands.check", "Check size/latency/accuracy budgets for CI."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module = importlib.import_module(SUBCOMMANDS[name][0])
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeprune")
@click.option("--verbose", is_flag=True, help="Show third-party warnings and log lines (hidden by default).")
def cli(verbose: bool) -> None:
    """edgeprune: prune BERT-family models into small, fast, verified edge artifacts."""
    from .quiet import quiet, verbose as verbose_env

    quiet(verbose or verbose_env())


def main(argv: list[str] | None = None) -> None:
    from .errors import EdgepruneError
    from .quiet import native_stderr_off, quiet, verbose

    # before any subcommand imports torch / tensorflow / onnxruntime
    quiet("--verbose" in (argv if argv is not None else sys.argv[1:]) or verbose())
    with native_stderr_off():
        try:
            rv = cli.main(args=argv, standalone_mode=False)
        except EdgepruneError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as e:
            e.show()
            sys.exit(2 if e.exit_code == 1 else e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; run again with --resume to continue", err=True)
            sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
