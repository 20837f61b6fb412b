"""``edgeprune check ARTIFACT|BUNDLE``: the CI budget gate.

Exit codes: 0 every budget holds; 1 a budget is exceeded, its measurement is missing (e.g. a
latency budget and no profile.json) or the bundle fails its sha256 check; 2 bad input (malformed
budget, unknown key, bad TOML, no budgets at all, a path that is not an artifact or bundle).
Reports (--junit, --markdown) are written for exit 0 and 1, never for exit 2.
"""
from __future__ import annotations

import os

import click

from edgeprune.errors import BudgetExceeded


@click.command("check")
@click.argument("path", metavar="ARTIFACT|BUNDLE", type=click.Path(path_type=str))
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Budget file (edgeprune.toml or pyproject.toml). Default: nearest one above the artifact, "
                   "then above the working directory.")
@click.option("--max-size", help="Largest artifact file size, e.g. 30MB (10^6) or 30MiB (2^20).")
@click.option("--max-params", help="Most stored parameters, e.g. 10M, 300k.")
@click.option("--min-compression", multiple=True, metavar="[DEF=]RATIO",
              help="Least compression, e.g. 5x (prunable_encoder) or whole_model=2x. Repeatable.")
@click.option("--min-sparsity", multiple=True, metavar="[DEF=]FRACTION",
              help="Least sparsity, e.g. 80% or 0.8 (prunable_encoder), or whole_model=50%. Repeatable.")
@click.option("--max-latency", multiple=True, metavar="[TARGET=]TIME",
              help="Slowest latency per target, e.g. rpi4=80ms; a bare 25ms means host. Repeatable.")
@click.option("--min-accuracy", help="Least task metric of the artifact, e.g. 0.85 or 85%.")
@click.option("--max-accuracy-drop", help="Most points lost vs the dense model, e.g. 0.5pt.")
@click.option("--latency-stat", "latency_statistic", type=click.Choice(["p50", "mean", "p90", "p99"]),
              default=None, help="Latency statistic compared with the budget (default p50).")
@click.option("--profile", "profile", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="profile.json to read (default: the one in the bundle or beside the artifact).")
@click.option("--no-search", is_flag=True, help="Do not look for budget files; use only --config and flags.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write JUnit XML (one test case per budget).")
@click.option("--github", is_flag=True,
              help="Print GitHub Actions annotations (and append to $GITHUB_STEP_SUMMARY when set).")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write a Markdown summary for a pull-request comment.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write the results as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace report files (--junit, --markdown, --json) that exist.")
def command(path: str, config: str | None, max_size: str | None, max_params: str | None,
            min_compression: tuple[str, ...], min_sparsity: tuple[str, ...], max_latency: tuple[str, ...],
            min_accuracy: str | None, max_accuracy_drop: str | None, latency_statistic: str | None,
            profile: str | None, no_search: bool, junit: str | None, github: bool, markdown: str | None,
            json_out: str | None, overwrite: bool) -> None:
    """Check size, parameter, compression, latency and accuracy budgets of an exported model.

    Budgets come from [tool.edgeprune.budgets] in pyproject.toml or [budgets] in edgeprune.toml;
    flags override them (use "off" to drop one). Exit 0: all hold; 1: a budget is exceeded or
    not measured; 2: bad input.
    """
    from edgeprune.budget import check
    from edgeprune.budget.reports import github_annotations, summary_line, table, write_junit, write_markdown
    from edgeprune.io import write_json
    from edgeprune.outputs import output_file
    from edgeprune.tables import print_table

    for value, flag, example in ((junit, "--junit", "check.xml"), (markdown, "--markdown", "check.md"),
                                 (json_out, "--json", "check.json")):
        output_file(value, overwrite=overwrite, flag=flag, example=example)
    overrides = {"max_size": max_size, "max_params": max_params, "min_compression": min_compression,
                 "min_sparsity": min_sparsity, "max_latency": max_latency, "min_accuracy": min_accuracy,
                 "max_accuracy_drop": max_accuracy_drop, "latency_statistic": latency_statistic}
    result = check(path, config=config, overrides=overrides, profile=profile, search=not no_search, cli=True)

    print_table(table(result))
    if junit:
        write_junit(result, junit)
    if markdown:
        write_markdown(result, markdown)
    if json_out:
        write_json(json_out, result.to_dict())
    if github:
        for line in github_annotations(result):
            click.echo(line)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            write_markdown(result, summary, append=True)
    if not result.passed:
        raise BudgetExceeded(summary_line(result))
    click.echo(summary_line(result))
