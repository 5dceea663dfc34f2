"""Command line: parse, call ``optkit.api``, print. No logic lives here.

Exit codes: 0 ok, 1 a gate failed or an unexpected error (a bug: one line, its traceback with --debug),
2 bad input (recipe, model, data, files), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, e.g. a
cancelled CI job): both stop at a safe point and say how to resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click

from optkit import __version__, interrupts
from optkit.errors import InternalError, OptkitError, describe_unexpected

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="optkit")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for optkit errors too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """optkit: fine-tune, export, quantise and evaluate models from one YAML recipe."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Reports go to OUTPUT/<recipe name>/.",
)
@click.option(
    "--workspace",
    default=".optkit",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of built artifacts and predictions.",
)
@click.option("--force", is_flag=True, help="Rebuild every step instead of reusing cached artifacts.")
@click.option(
    "--strict-providers",
    is_flag=True,
    help="Fail (exit 2) when a provider in evaluate.providers is missing or its nodes mostly fall back to CPU.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="After the run, compare with this stored report; write comparison.json/.md/.xml beside the report; "
    "exit 1 on a regression.",
)
@click.option("--max-accuracy-drop", help="With --baseline: allowed accuracy drop. Default: report.compare, else 1%.")
@click.option(
    "--max-latency-regression", help="With --baseline: allowed p50 slow-down beyond noise. Default: recipe, else 10%."
)
@click.option("--max-memory-regression", help="With --baseline: allowed peak RSS growth. Default: recipe, else 10%.")
@click.option("--allow-env-mismatch", is_flag=True, help="With --baseline: compare a baseline from another CPU anyway.")
@click.option(
    "--summary-file",
    envvar="GITHUB_STEP_SUMMARY",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --baseline: append the Markdown verdict here. Default: $GITHUB_STEP_SUMMARY when set.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Run the training steps data-parallel on this many processes of this machine (gloo on CPU, one thread "
    "each unless OMP_NUM_THREADS says otherwise; NCCL on GPUs). Rank 0 alone builds the other steps, evaluates "
    "and writes the reports. Under torchrun or `accelerate launch --multi_gpu`, leave it out.",
)
@click.pass_context
def run(
    ctx: click.Context,
    recipe: Path,
    output: Path,
    workspace: Path,
    force: bool,
    strict_providers: bool,
    baseline: Path | None,
    max_accuracy_drop: str | None,
    max_latency_regression: str | None,
    max_memory_regression: str | None,
    allow_env_mismatch: bool,
    summary_file: Path | None,
    processes: int,
) -> None:
    """Run RECIPE: build every variant, evaluate, write reports, check gates (and compare with --baseline).

    Exit 0 when every gate passed (and nothing regressed against --baseline), 1 when a gate failed or
    a figure regressed beyond its limit and the noise, 2 on bad input, including a baseline measured
    on another kind of CPU (refused, not failed; the report is still written).
    """
    from optkit.api import run_recipe
    from optkit.progress import Progress

    limits = {
        "max_accuracy_drop": max_accuracy_drop,
        "max_latency_regression": max_latency_regression,
        "max_memory_regression": max_memory_regression,
    }
    given = [f"--{k.replace('_', '-')}" for k, v in limits.items() if v is not None]
    if allow_env_mismatch:
        given.append("--allow-env-mismatch")
    if ctx.get_parameter_source("summary_file") == click.core.ParameterSource.COMMANDLINE:
        given.append("--summary-file")
    if given and baseline is None:
        raise click.UsageError(f"{', '.join(given)} only make(s) sense with --baseline BASE.json")
    if _as_training_rank(ctx, recipe, workspace, force, processes):
        return
    if baseline is not None:
        _run_with_baseline(
            ctx, recipe, output, workspace, force, strict_providers, baseline, limits, allow_env_mismatch, summary_file
        )
        return
    progress = Progress()
    with _errors(ctx):
        outcome = run_recipe(
            recipe,
            output=output,
            workspace=workspace,
            force=force,
            progress=progress,
            strict_providers=strict_providers,
        )
    _print_run(outcome, progress)
    if not outcome.passed:
        failed = sum(not g["passed"] for g in outcome.report["gates"])
        click.echo(f"error: {failed} gate(s) failed; see above", err=True)
        sys.exit(1)


def _as_training_rank(ctx: click.Context, recipe: Path, workspace: Path, force: bool, processes: int) -> bool:
    """Start the ranks (``--processes N``), or be a rank other than 0; False: carry on as the (main) run.

    Under a launcher the environment names the ranks (torchrun, ``accelerate launch``, or the
    ``--processes`` launcher itself, whose ranks get the same command line).
    """
    from optkit import distributed

    with _errors(ctx):
        world = distributed.world_size()
    if world == 1 and processes > 1:
        sys.exit(distributed.launch(_command_line(ctx), processes))
    if world > 1 and processes not in (1, world):
        raise click.UsageError(f"--processes {processes}, but the launcher started {world} processes; leave it out")
    if world > 1 and not distributed.is_main():
        from optkit.api import train_along

        with _errors(ctx):
            train_along(recipe, workspace=workspace, force=force)
        return True
    return False


def _command_line(ctx: click.Context) -> list[str]:
    """This command's arguments as given (for the ranks to run the same command), from click's parse."""
    args = ["--debug"] if ctx.obj and ctx.obj.get("debug") else []
    args.append(ctx.info_name or "run")
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if ctx.get_parameter_source(param.name or "") != click.core.ParameterSource.COMMANDLINE:
            continue  # defaults and environment variables reach the ranks by themselves
        if isinstance(param, click.Argument):
            args.append(str(value))
        elif isinstance(param, click.Option) and param.is_flag:
            args += [param.opts[0]] if value else []
        elif isinstance(param, click.Option):
            args += [param.opts[0], str(value)]
    return args


def _run_with_baseline(
    ctx: click.Context,
    recipe: Path,
    output: Path,
    workspace: Path,
    force: bool,
    strict_providers: bool,
    baseline: Path,
    limits: dict[str, str | None],
    allow_env_mismatch: bool,
    summary_file: Path | None,
) -> None:
    from optkit.ci import append_summary, run_against_baseline
    from optkit.compare import parse_fraction
    from optkit.progress import Progress

    progress = Progress()
    with _errors(ctx):
        overrides = {k: None if v is None else parse_fraction(v) for k, v in limits.items()}
        outcome = run_against_baseline(
            recipe,
            baseline,
            output=output,
            workspace=workspace,
            force=force,
            progress=progress,
            strict_providers=strict_providers,
            overrides=overrides,
            allow_env_mismatch=allow_env_mismatch,
        )
        if summary_file is not None:
            append_summary(summary_file, outcome.step_summary)
    _print_run(outcome.run, progress)
    for p in outcome.paths:
        click.echo(f"wrote {p}")
    if summary_file is not None:
        click.echo(f"appended the summary to {summary_file}")
    click.echo("")
    click.echo(outcome.summary, nl=False)
    comparison = outcome.comparison
    if comparison["status"] == "refused":
        click.echo(
            f"error: refusing to compare with {str(baseline)!r}: {comparison['refused']}. Promote this run's report "
            f"as the baseline for this machine type, or pass --allow-env-mismatch to compare anyway.",
            err=True,
        )
    for c in comparison["checks"]:
        if not c["passed"]:
            click.echo(f"FAIL {c['message']}", err=True)
    if outcome.exit_code:
        click.echo(f"error: {_verdict_line(comparison)}", err=True)
    sys.exit(outcome.exit_code)


def _verdict_line(comparison: dict) -> str:  # type: ignore[type-arg]
    parts = []
    if not comparison["gates_passed"]:
        parts.append("gate(s) failed")
    regressions = sum(not c["passed"] for c in comparison["checks"])
    if regressions:
        parts.append(f"{regressions} regression(s) beyond thresholds and noise")
    if comparison["status"] == "refused":
        parts.append("baseline refused (another machine)")
    return "; ".join(parts)


def _print_run(outcome, progress) -> None:  # type: ignore[no-untyped-def]
    """The run's tables, gates, notes and files, as ``optkit run`` always printed them."""
    _print_tables(outcome.report, progress)
    for g in outcome.report["gates"]:
        mark = "[green]PASS[/]" if g["passed"] else "[red]FAIL[/]"
        progress.console.print(f"{mark} {g['message']}")
    for note in outcome.report["notes"]:
        progress.console.print(f"[yellow]note[/]: {note}")
    for p in outcome.paths:
        click.echo(f"wrote {p}")
    if outcome.packages:
        click.echo(f"packages: {', '.join(str(p) for p in outcome.packages)}")
    _print_recommendation(outcome.report, outcome.packages)


@cli.group()
def baseline() -> None:
    """Keep the stored baseline report that `optkit run --baseline` compares with."""


@baseline.command("update")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where `optkit run` wrote the reports: OUTPUT/<recipe name>/report.json is promoted.",
)
@click.option(
    "--to",
    "dest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Baseline file to write. Default: baselines/<recipe name>.json.",
)
@click.pass_context
def baseline_update(ctx: click.Context, recipe: Path, output: Path, dest: Path | None) -> None:
    """Promote RECIPE's latest report to its baseline; refused (exit 2) if a gate failed or the recipe changed."""
    from optkit.ci import update_baseline

    with _errors(ctx):
        report_path, target, report = update_baseline(recipe, output=output, dest=dest)
    click.echo(f"promoted {report_path} (finished {report.get('finished')}) to {target}")


@baseline.command("promote")
@click.argument("report", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to", "-o", "dest", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Baseline file to write."
)
@click.pass_context
def baseline_promote(ctx: click.Context, report: Path, dest: Path) -> None:
    """Copy REPORT (a report.json whose gates passed) to the baseline file, atomically."""
    from optkit.ci import promote_report

    with _errors(ctx):
        data = promote_report(report, dest)
    click.echo(f"promoted {report} (finished {data.get('finished')}) to {dest}")


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, recipe: Path) -> None:
    """Check RECIPE, its model and its data without running any step."""
    from optkit.api import validate_recipe

    with _errors(ctx):
        r, splits = validate_recipe(recipe)
    click.echo(f"{recipe}: ok: {len(r.variants)} variant(s): {', '.join(r.variants)}")
    click.echo(
        f"data: {splits.info['rows_used']} rows ({splits.info['summary']}); train {len(splits.train)}, "
        f"calibration {len(splits.calibration)}, eval {len(splits.eval)}"
        + (f", validation {len(splits.validation)} (cut from the held-out rows)" if len(splits.validation) else "")
        + (
            f" of {splits.info['eval_rows_available']} in {splits.info['eval_source']} ({splits.info['eval_summary']})"
            if "eval_source" in splits.info
            else ""
        )
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def env(as_json: bool) -> None:
    """Versions, ONNX Runtime providers, CPU flags and threads of this machine."""
    from optkit.envinfo import available_cpus, collect_environment

    info = collect_environment(available_cpus())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    cpu = info["cpu"]
    click.echo(f"optkit {info['optkit']}  python {info['python']}  {info['platform']}")
    click.echo(f"cpu: {cpu['model']}  ({info['cpus_available']} available, default threads {info['threads']})")
    click.echo(f"isa: {', '.join(cpu['isa']) or 'none detected'}  int8 VNNI: {'yes' if cpu['int8_vnni'] else 'no'}")
    click.echo(f"memory: {info['memory_total_gb']} GB")
    click.echo(f"onnxruntime providers: {', '.join(info['onnxruntime_providers'])}")
    for name, version in info["libraries"].items():
        click.echo(f"  {name:<18} {version}")


@cli.command()
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--max-accuracy-drop", default="1%", show_default=True, help="Allowed accuracy drop (0.01 or 1%).")
@click.option(
    "--max-latency-regression", default="10%", show_default=True, help="Allowed p50 slow-down beyond both runs' CIs."
)
@click.option("--max-memory-regression", default="10%", show_default=True, help="Allowed peak RSS growth.")
@click.option("--allow-env-mismatch", is_flag=True, help="Compare reports from different CPUs / ISAs anyway.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Also write the checks as JUnit XML.")
@click.pass_context
def compare(
    ctx: click.Context,
    base: Path,
    new: Path,
    max_accuracy_drop: str,
    max_latency_regression: str,
    max_memory_regression: str,
    allow_env_mismatch: bool,
    junit: Path | None,
) -> None:
    """Compare report BASE with report NEW; exit 1 on a regression beyond thresholds and noise."""
    from optkit.cache import write_atomic
    from optkit.compare import (
        EnvironmentMismatch,
        Thresholds,
        compare_reports,
        load_report,
        parse_fraction,
        render_comparison,
    )
    from optkit.reports.junit import compare_junit

    with _errors(ctx):
        limits = Thresholds(
            parse_fraction(max_accuracy_drop),
            parse_fraction(max_latency_regression),
            parse_fraction(max_memory_regression),
        )
        try:
            result = compare_reports(load_report(base), load_report(new), limits, allow_env_mismatch=allow_env_mismatch)
        except EnvironmentMismatch as e:
            click.echo(f"error: {e}. Pass --allow-env-mismatch to compare anyway.", err=True)
            sys.exit(2)
    click.echo(render_comparison(result), nl=False)
    for note in result["notes"]:
        click.echo(f"note: {note}")
    if junit:
        write_atomic(junit, compare_junit(result, f"optkit compare {base.name} {new.name}"))
    failed = [c for c in result["checks"] if not c["passed"]]
    for c in failed:
        click.echo(f"FAIL {c['message']}", err=True)
    if failed:
        click.echo(f"error: {len(failed)} regression(s) beyond thresholds and noise", err=True)
        sys.exit(1)
    click.echo(f"ok: {len(result['checks'])} checks passed")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("variant")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Package folder.")
@click.option(
    "--workspace",
    default=".optkit",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The cache the run used.",
)
@click.pass_context
def package(ctx: click.Context, run_dir: Path, variant: str, output: Path, workspace: Path) -> None:
    """Write VARIANT of a finished run (RUN_DIR: its report folder) as a package, from the cache, without rebuilding."""
    from optkit.api import package_variant

    with _errors(ctx):
        folder = package_variant(run_dir, variant, output, workspace=workspace)
    click.echo(f"wrote package {folder}")


@cli.command()
@click.argument("package_dir", metavar="PACKAGE", type=click.Path(file_okay=False, path_type=Path))
@click.argument("texts", nargs=-1)
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False, path_type=Path), help="One text per line.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per text.")
@click.option("--no-verify", is_flag=True, help="Skip checking the files against the package's sha256 list.")
@click.pass_context
def predict(
    ctx: click.Context, package_dir: Path, texts: tuple[str, ...], file: Path | None, as_json: bool, no_verify: bool
) -> None:
    """Run a package on TEXT ... (or --file) and print each prediction, as evaluation computed them.

    A pair classifier (data.text_pair) and a question-answering model read two texts a line, separated by
    a tab; a token classifier reads words separated by spaces."""
    from optkit.ship import predict_package

    with _errors(ctx):
        inputs = list(texts) + _lines(file)
        manifest, results = predict_package(package_dir, inputs, verify=not no_verify)
    if as_json:
        click.echo(json.dumps([{"text": t, **r} for t, r in zip(inputs, results, strict=True)], indent=2))
        return
    click.echo(f"{manifest['variant']} ({manifest['format']}, {manifest['recipe']['name']}):")
    for text, r in zip(inputs, results, strict=True):
        shown = f"{r['label']} {r['score']:.3f}" if "label" in r else json.dumps(r.get("prediction"))
        if "embedding" in r:  # a sentence embedding: its size and first values (--json prints all of them)
            shown = f"[{r['dim']}-d: {', '.join(f'{x:+.3f}' for x in r['embedding'][:3])}, …]"
        click.echo(f"  {shown}  {text[:100]}")


def _lines(file: Path | None) -> list[str]:
    """Non-empty lines of ``file``; a missing or unreadable file is bad input, named."""
    if file is None:
        return []
    from optkit.errors import PackageError

    try:
        return [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise PackageError(f"--file {str(file)!r}: cannot read it ({e})") from None


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--provider",
    "-p",
    "providers",
    multiple=True,
    default=["cpu"],
    show_default=True,
    help="cpu, cuda, tensorrt, openvino or a raw ORT provider name; repeat for several.",
)
@click.option("--batch", "batches", multiple=True, type=int, default=[1], show_default=True, help="Batch sizes (grid).")
@click.option(
    "--seq",
    "seqs",
    multiple=True,
    type=int,
    default=[128],
    show_default=True,
    help="Sequence lengths (grid). An image model (config.json with num_channels beside the file) is fed "
    "pixels at the size its config and preprocessor_config.json give, at each --batch.",
)
@click.option("--warmup", default="10", show_default=True, help="Untimed runs, or 'auto' (until stable).")
@click.option("--runs", default=100, show_default=True, help="Timed runs per shape (upper bound with --time-budget).")
@click.option("--time-budget", type=float, default=None, help="Seconds of timing per shape.")
@click.option(
    "--precision",
    default=None,
    help="Adaptive: stop once every median's 95% CI is within ±this (0.03 or 3%); --runs is then the cap.",
)
@click.option("--threads", type=int, default=None, help="Intra-op threads. Default: CPUs available.")
@click.option("--memory/--no-memory", default=True, show_default=True, help="Peak RSS in a fresh process.")
@click.option("--strict-providers", is_flag=True, help="Fail when a provider is missing or falls back to CPU.")
@click.option(
    "--provider-option",
    "provider_options",
    multiple=True,
    metavar="PROVIDER:KEY=VALUE",
    help="A provider option, e.g. openvino:precision=FP16; repeat for several.",
)
@click.option(
    "--output", "-o", type=click.Path(file_okay=False, path_type=Path), help="Write report.json/.md/.html here."
)
@click.pass_context
def bench(
    ctx: click.Context,
    model: Path,
    providers: tuple[str, ...],
    batches: tuple[int, ...],
    seqs: tuple[int, ...],
    warmup: str,
    runs: int,
    time_budget: float | None,
    precision: str | None,
    threads: int | None,
    memory: bool,
    strict_providers: bool,
    provider_options: tuple[str, ...],
    output: Path | None,
) -> None:
    """Benchmark any ONNX file MODEL with the optkit harness (synthetic inputs)."""
    from optkit.bench import bench_model, bench_settings, render_bench_markdown, write_bench_reports
    from optkit.progress import Progress

    progress = Progress()
    with _errors(ctx):
        spec = bench_settings(providers, batches, seqs, warmup, runs, time_budget, threads, precision, provider_options)
        report = bench_model(
            model,
            providers=spec.providers,
            provider_options=spec.provider_options,
            shapes=spec.shapes,
            latency=spec.latency,
            memory=memory,
            strict_providers=strict_providers,
            progress=progress,
        )
    click.echo(render_bench_markdown(report), nl=False)
    if output:
        for p in write_bench_reports(report, output):
            click.echo(f"wrote {p}")


class _errors:
    """Turn OptkitError into a clean message + exit code; Ctrl-C and SIGTERM into a resume hint."""

    def __init__(self, ctx: click.Context) -> None:
        self.debug = bool(ctx.obj and ctx.obj.get("debug"))
        self._signals = interrupts.handling()

    def __enter__(self) -> None:
        self._signals.__enter__()

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        stop = interrupts.requested()
        self._signals.__exit__(None, None, None)
        code, prefix = (143, "terminated (SIGTERM): ") if stop == signal.SIGTERM else (130, "")
        if exc is None or isinstance(exc, SystemExit):
            if stop is not None:  # asked to stop, but nothing ran after that could act on it
                click.echo(f"{prefix}interrupted as the command finished: its output was written in full", err=True)
                sys.exit(code)
            return False
        if isinstance(exc, KeyboardInterrupt):
            click.echo(
                f"\n{prefix}interrupted: finished steps are cached; run the same command again to resume", err=True
            )
            sys.exit(code)
        if isinstance(exc, OptkitError) and exc.exit_code == 130:
            click.echo(f"{prefix}{exc}", err=True)
            sys.exit(code)
        if isinstance(exc, OptkitError) and not self.debug:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        if isinstance(exc, Exception) and not self.debug:  # anything else is a bug: one line, not a traceback
            click.echo(f"error: {describe_unexpected(exc)}", err=True)
            sys.exit(InternalError.exit_code)
        return False


def _print_recommendation(report: dict, packages: list[Path]) -> None:  # type: ignore[type-arg]
    """The run's last word: which variant to ship, why, and where its package is."""
    rec = report.get("recommended") or {}
    if rec.get("variant"):
        folder = next((p for p in packages if p.name == rec["variant"]), None)
        click.echo(f"recommended: {rec['variant']}" + (f" -> {folder}" if folder else " (not packaged)"))
    else:
        click.echo("recommended: none")
    click.echo(f"  {rec.get('reason', 'no recommendation in this report')}")


def _print_tables(report: dict, progress) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from optkit.reports.markdown import summary_table

    for provider in report["recipe"]["evaluate"]["providers"]:
        headers, rows = summary_table(report, provider)
        table = Table(title=f"{report['recipe']['name']} — provider {provider}", show_lines=False)
        for h in headers:
            table.add_column(h, justify="left" if h in ("variant", "runtime") else "right")
        for r in rows:
            table.add_row(*r)
        progress.console.print(table)


def main() -> None:
    """The ``optkit`` executable. An interrupted run leaves through ``os._exit`` once its message is out.

    By then every cleanup has run (the step's temporary folder is gone, the old report is in
    place). What is left is interpreter shutdown with torch and ONNX Runtime loaded, which can take
    seconds, and once in this project's CI it ended an interrupted run by SIGINT (status -2)
    instead of exit 130. Scripts and CI branch on the status, so it must be exact.
    """
    try:
        cli(prog_name="optkit")
    except SystemExit as e:
        if e.code in (130, 143):
            _exit_now(int(e.code))
        raise
    except KeyboardInterrupt:  # a second Ctrl-C while the first one unwinds
        _exit_now(130)


def _exit_now(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
