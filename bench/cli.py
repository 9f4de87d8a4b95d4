"""Command line: `python run_bench.py SUITE [options]` (or `--suite SUITE`), `--list`, `--report`.

Each suite has its own sub-command whose flags are the common groups it declares plus its own options
(bench/suites/__init__.py), so a flag that does not apply to a suite is an error, not silently ignored.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from fitbench import representations
from fitbench.datasets import IMAGE_SETS, DatasetError

from . import executor, tracking
from .executor import EXECUTORS, ExecutorConfig, RunsLostError
from .html_report import write_report
from .lock import FolderBusyError, FolderLock
from .metrics import SSIM_MIN_SIDE
from .options import SuiteOptions, add_options, options_from_namespace
from .paths import check_output_folder, writing_under
from .presets import UnknownPresetError
from .provenance import Provenance
from .suites import Suite, load_suites

EXAMPLES = """Examples:
  python run_bench.py fitting                      # the quick preset: tuned, 32 test images, a verdict
  python run_bench.py fitting --preset smoke --out /tmp/fb
  python run_bench.py fitting --reps siren,fourier_features --images ffn-natural-test --data-root ../shared/data
  python run_bench.py fitting --help               # the fitting suite's own flags
  python run_bench.py --list
`--suite NAME` works in place of the sub-command. Rerunning a command skips the runs already in
OUT/<suite>/runs.jsonl; --fresh starts over."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line that names the command whose --help explains it."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def add_common(parser: argparse.ArgumentParser, suite: Suite) -> None:
    """The common flags of the groups `suite` accepts (--out and --plugin: every suite)."""
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    parser.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="load representations from a .py file or an importable module before anything else "
                        "(repeatable); installed packages can register theirs with a `fitbench.representations` "
                        "entry point instead")
    groups = set(suite.common)
    if "preset" in groups:
        parser.add_argument("--preset", default=suite.default_preset,
                            help="problem size (default: %(default)s): " + "; ".join(
                                f"{p.name}: {p.description}" for p in suite.presets.values()))
    if "representations" in groups:
        parser.add_argument("--reps", help="comma-separated representations (default: all registered; see --list)")
    if "settings" in groups:
        parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME.FIELD=VALUE",
                            help="override a setting, e.g. --set siren.omega_0=20 (repeatable)")
    if "images" in groups:
        parser.add_argument("--images", help=f"image set ({', '.join(IMAGE_SETS)}), several comma-separated, or a "
                            "folder of PNG/JPEG files (default: the preset's)")
        parser.add_argument("--max-images", type=int, help="use only the first N images of each set")
        parser.add_argument("--size", type=int,
                            help="image side in pixels after centre crop and resize (default: the preset's)")
    if "data" in groups:
        parser.add_argument("--data-root", type=Path, help="where downloadable image sets live (default: "
                            "$FITBENCH_DATA_ROOT or ~/.cache/fitbench/data)")
    if "steps" in groups:
        parser.add_argument("--steps", type=int, help="optimisation steps per fit (default: the preset's)")
    if "seeds" in groups:
        parser.add_argument("--seeds", type=int, help="seeds per (representation, image) (default: the preset's)")
    if "device" in groups:
        parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    if "executor" in groups:
        parser.add_argument("--executor", choices=EXECUTORS, default="local",
                            help="where the fits run: local (one after another here, the default) or ray (as Ray "
                            "tasks on a local Ray instance, or on a cluster with --ray-address; needs pip install "
                            "-e \".[distributed]\"); records, resume and results are the same either way; see "
                            "docs/distributed.md")
        parser.add_argument("--ray-address", metavar="ADDR", help="ray: join this Ray cluster, e.g. HEAD_IP:6379 "
                            "(default: $RAY_ADDRESS, else start a local Ray instance for the run)")
        parser.add_argument("--cpus-per-fit", type=float, metavar="N", help="ray: CPUs each fit reserves (default: 1)")
        parser.add_argument("--gpus-per-fit", type=float, metavar="N",
                            help="ray: GPUs each fit reserves; a fraction such as 0.25 lets 4 fits share a GPU "
                            "(default: 1 when the fits run on CUDA, see --device; else 0)")
        parser.add_argument("--threads-per-fit", type=int, metavar="N",
                            help="torch threads per fit (default: torch's own locally, --cpus-per-fit on Ray); give "
                            "the same number to compare records across executors bit for bit")
    if "records" in groups:
        parser.add_argument("--fresh", action="store_true",
                            help="start over: move the suite's previous records aside")
    if "tracking" in groups:
        parser.add_argument("--wandb", action="store_true",
                            help="log runs, curves, figures and records to Weights & Biases (offline under "
                            "OUT/wandb/ without an API key; WANDB_MODE=disabled turns it off); see docs/tracking.md")
        parser.add_argument("--wandb-project", help="W&B project (default: $WANDB_PROJECT or fitbench)")
        parser.add_argument("--wandb-entity", help="W&B entity, a user or team (default: $WANDB_ENTITY or yours)")
    if "dry_run" in groups:
        parser.add_argument("--dry-run", action="store_true",
                            help="print the plan and exit: the runs, their images and settings, those already done "
                            "in OUT, and a time estimate from a short probe; runs and writes nothing")


def build_parser(suites: dict[str, Suite]) -> argparse.ArgumentParser:
    parser = Parser(
        prog="run_bench.py",
        description="fitbench: fit, compress and generate with image representations; write lasting, comparable "
        "results. Choose a suite (its --help lists its flags), or --list, or --report.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true",
                        help="list representations, image sets, and each suite with its presets")
    parser.add_argument("--report", action="store_true",
                        help="write OUT/report/index.html from the results in --out and exit (every suite also "
                        "writes it when it finishes); an offline page, see docs/report.md")
    parser.add_argument("--out", type=Path, default=Path("results"), help="--report: the output folder (default: "
                        "results)")
    parser.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="--list: load representations from a .py file or a module first (repeatable)")
    commands = parser.add_subparsers(dest="suite", metavar="SUITE", title="suites (python run_bench.py SUITE --help)",
                                     parser_class=Parser)
    parser.suite_parsers = {}  # name -> its sub-command's parser, for errors in its own words
    for suite in suites.values():
        sub = parser.suite_parsers[suite.name] = commands.add_parser(suite.name, help=suite.help,
                                                                     description=suite.help)
        add_common(sub, suite)
        if suite.options is not None:
            add_options(sub.add_argument_group(f"{suite.name} options"), suite.options)
    return parser


def suite_first(argv: list[str], suites: dict[str, Suite]) -> list[str]:
    """`--suite NAME ...` (the older form, anywhere on the line) as the sub-command `NAME ...`."""
    for index, item in enumerate(argv):
        if item == "--suite" and index + 1 < len(argv):
            return [argv[index + 1], *argv[:index], *argv[index + 2:]]
        if item.startswith("--suite="):
            return [item.split("=", 1)[1], *argv[:index], *argv[index + 1:]]
    return argv


def parse_settings(items: list[str]) -> dict[str, dict]:
    settings: dict[str, dict] = {}
    for item in items:
        target, _, value = item.partition("=")
        name, _, field = target.partition(".")
        if not (name and field and value):
            raise ValueError(f"--set {item!r}: expected NAME.FIELD=VALUE, e.g. siren.omega_0=20")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # a bare word stays a string
        settings.setdefault(name, {})[field] = parsed
    return settings


def positive(name: str, value: int | None, minimum: int = 1, why: str = "") -> int | None:
    if value is not None and value < minimum:
        raise ValueError(f"--{name} must be at least {minimum}{why}, got {value}")
    return value


def options_from(args: argparse.Namespace, suite: Suite) -> SuiteOptions:
    """The typed options of `suite` from its parsed command line; flags it does not take keep their defaults."""
    given = vars(args)
    common = {name: given[name] for name in ("preset", "images", "device", "out", "data_root", "fresh", "dry_run",
                                             "wandb", "wandb_project", "wandb_entity") if name in given}
    if given.get("reps"):
        common["representations"] = [r.strip() for r in args.reps.split(",") if r.strip()]
    for name in ("steps", "seeds", "max_images"):
        if name in given:
            common[name] = positive(name.replace("_", "-"), given[name])
    if "size" in given:
        common["size"] = positive("size", args.size, SSIM_MIN_SIDE, " (SSIM cannot score smaller images)")
    return SuiteOptions(
        suite=suite.name, **common, settings=parse_settings(given.get("settings", [])), plugins=list(args.plugins),
        executor=(ExecutorConfig.from_args(args) if "executor" in suite.common else
                  ExecutorConfig(plugins=ExecutorConfig.plugin_paths(args.plugins))),
        own=options_from_namespace(suite.options, args) if suite.options else None)


def print_listing(suites: dict[str, Suite]) -> None:
    print("representations:")
    for name in representations.list_representations():
        entry = representations.get_entry(name)
        params = representations.count_parameters(representations.build(name, out_features=3))
        print(f"  {name:18s} {params:>9,} params (defaults, RGB)  {entry.summary}")
    print("image sets:\n  " + "\n  ".join(IMAGE_SETS) + "\n  PATH (a folder of PNG/JPEG files)")
    print("suites (python run_bench.py SUITE --help) and their presets:")
    for suite in suites.values():
        print(f"  {suite.name:12s} {suite.help}")
        for preset in (suite.presets or {}).values():
            default = " (default)" if preset.name == suite.default_preset else ""
            print(f"    {preset.name + default:20s} {preset.description}")


def run_tracked(suite, options: SuiteOptions, argv: list[str] | None = None) -> int:
    """Run a suite as the one writer of its folder, with its provenance recorded and the invocation's tracker
    active; then log the suite folder's figures and records. Every write stays inside --out (bench/paths.py)."""
    with writing_under(options.out):
        check_output_folder(options.out, [options.suite_dir(), options.out / "reference"])
        return _run_locked(suite, options, argv)


def _run_locked(suite, options: SuiteOptions, argv: list[str] | None) -> int:
    with FolderLock(options.suite_dir()):
        provenance = Provenance(options.suite_dir(), suite.name, options.preset, options.device,
                                None if argv is None else ["run_bench.py", *map(str, argv)])
        tracker = tracking.make_tracker(options.wandb, suite.name, options.out, options.wandb_project,
                                        options.wandb_entity)
        exit_code = 1  # what the tracker and the provenance report if the suite raises
        try:
            with tracking.activate(tracker), executor.activate(options.executor):
                exit_code = suite.run(options)
        finally:
            provenance.close(exit_code)
            tracker.finish_suite(options.suite_dir(), exit_code)
    write_report_after(options)
    return exit_code


REPORTED_SUITES = ("fitting", "compression", "generative", "speed", "ci")  # the report page's sections


def write_report_after(options: SuiteOptions) -> None:
    """The report page after a suite that wrote records; a failure to write it never fails the suite."""
    if options.suite not in REPORTED_SUITES:
        return  # tune and precision write settings files, which the page does not show
    records = [path for path in options.suite_dir().glob("*.jsonl") if path.name != "provenance.jsonl"]
    if not records or not any(options.suite_dir().glob("*.csv")):
        return  # e.g. --decode or ci --update-thresholds, which write no result records
    try:
        print(f"report: {write_report(options.out)}", file=sys.stderr)
    except (ValueError, OSError) as error:
        print(f"warning: report not written: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    suites = load_suites()
    parser = build_parser(suites)
    argv = suite_first(list(sys.argv[1:] if argv is None else argv), suites)
    try:  # --help and errors on the command line end here, with argparse's exit code
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            where = parser.suite_parsers.get(args.suite, parser)
            where.error(f"unrecognized arguments: {' '.join(unknown)}" + (
                "; --suite needs a suite name" if unknown[-1] == "--suite" else ""))
    except SystemExit as exit:
        return int(exit.code or 0)
    try:
        for plugin in args.plugins:
            representations.load_plugin(plugin)
    except representations.PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.list:
        print_listing(suites)
        return 0
    if args.report and not args.suite:
        try:
            with writing_under(args.out):
                check_output_folder(args.out, [])
                print(f"report: {write_report(args.out)}")
            return 0
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if not args.suite:
        parser.error("choose a suite (" + ", ".join(suites) + "), or --list, or --report")
    suite = suites[args.suite]
    try:
        options = options_from(args, suite)
        if options.dry_run:  # no lock, provenance, tracker or report: nothing is written
            return suite.run(options)
        return run_tracked(suite, options, argv)
    except (DatasetError, UnknownPresetError, representations.UnknownRepresentationError, ValueError,
            FolderBusyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunsLostError as error:  # runs that failed to execute at all: a failed suite, as a failed run is
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are saved; run the same command again to continue", file=sys.stderr)
        return 130
