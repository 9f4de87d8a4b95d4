"""Command line: `python run_bench.py --suite NAME [options]`."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from fitbench import representations
from fitbench.datasets import IMAGE_SETS, DatasetError

from . import executor, tracking
from .executor import EXECUTORS, LOCAL_SUITES, ExecutorConfig, RunsLostError
from .html_report import write_report
from .lock import FolderBusyError, FolderLock
from .metrics import SSIM_MIN_SIDE
from .options import SuiteOptions
from .paths import check_output_folder, writing_under
from .presets import FITTING_PRESETS, UnknownPresetError
from .provenance import Provenance
from .suites import load_suites


DRY_RUN_SUITES = ("fitting", "compression", "tune")  # the suites that can show their plan (--dry-run)


def build_parser(suites) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="fitbench: fit, compress and generate with image representations; write lasting, comparable results.",
        epilog="Examples:\n"
        "  python run_bench.py --suite fitting --preset smoke --out /tmp/fb\n"
        "  python run_bench.py --suite fitting --reps siren,fourier_features --images ffn-natural --data-root ../shared/data\n"
        "  python run_bench.py --list\n"
        "Rerunning a command skips the runs already in OUT/<suite>/runs.jsonl; --fresh starts over.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--suite", choices=list(suites), help="which suite to run: " +
                        "; ".join(f"{s.name}: {s.help}" for s in suites.values()))
    parser.add_argument("--list", action="store_true", help="list representations, image sets, presets and suites")
    parser.add_argument("--report", action="store_true",
                        help="write OUT/report/index.html from the results in --out and exit (every suite also writes "
                        "it when it finishes); an offline page, see docs/report.md")
    parser.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="load representations from a .py file or an importable module before anything else "
                        "(repeatable); installed packages can register theirs with a `fitbench.representations` "
                        "entry point instead")
    parser.add_argument("--preset", default="standard",
                        help="problem size, defined by each suite: smoke (seconds, for CI), standard (the default), "
                        "paper (the sources' settings, GPU-scale); --list shows the fitting presets, docs/ the others'")
    parser.add_argument("--reps", help="comma-separated representations (default: all registered; see --list)")
    parser.add_argument("--images", help=f"image set ({', '.join(IMAGE_SETS)}) or a folder of PNG/JPEG files "
                        "(default: the preset's)")
    parser.add_argument("--steps", type=int, help="optimisation steps per fit (default: the preset's)")
    parser.add_argument("--seeds", type=int, help="seeds per (representation, image) (default: the preset's)")
    parser.add_argument("--size", type=int, help="image side in pixels after centre crop and resize (default: the preset's)")
    parser.add_argument("--max-images", type=int, help="use only the first N images of the set")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    parser.add_argument("--data-root", type=Path,
                        help="where downloadable image sets live (default: $FITBENCH_DATA_ROOT or ~/.cache/fitbench/data)")
    parser.add_argument("--fresh", action="store_true", help="start over: move the suite's previous records aside")
    parser.add_argument("--dry-run", action="store_true",
                        help=f"print the plan and exit: the fits, their images and settings, those already done in "
                        f"OUT, and a time estimate from a short probe; fits and writes nothing "
                        f"({', '.join(DRY_RUN_SUITES)} suites)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="REP.FIELD=VALUE",
                        help="override a representation setting, e.g. --set siren.omega_0=20 (repeatable)")
    parser.add_argument("--wandb", action="store_true",
                        help="log runs, curves, figures and records to Weights & Biases (offline under OUT/wandb/ "
                        "without an API key; WANDB_MODE=disabled turns it off); see docs/tracking.md")
    parser.add_argument("--wandb-project", help="W&B project (default: $WANDB_PROJECT or fitbench)")
    parser.add_argument("--wandb-entity", help="W&B entity, a user or team (default: $WANDB_ENTITY or your default)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where the fits run: local (one after another here, the default) or ray (as Ray tasks on "
                        "a local Ray instance, or on a cluster with --ray-address; needs pip install -e "
                        "\".[distributed]\"); records, resume and results are the same either way; the "
                        f"{' and '.join(LOCAL_SUITES)} suites always run locally; see docs/distributed.md")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="ray: join this Ray cluster, e.g. HEAD_IP:6379 (default: $RAY_ADDRESS, else start a "
                        "local Ray instance for the run)")
    parser.add_argument("--cpus-per-fit", type=float, metavar="N", help="ray: CPUs each fit reserves (default: 1)")
    parser.add_argument("--gpus-per-fit", type=float, metavar="N",
                        help="ray: GPUs each fit reserves; a fraction such as 0.25 lets 4 fits share a GPU "
                        "(default: 1 when the fits run on CUDA, see --device; else 0)")
    parser.add_argument("--threads-per-fit", type=int, metavar="N",
                        help="torch threads per fit (default: torch's own locally, --cpus-per-fit on Ray); give the "
                        "same number to compare records across executors bit for bit")
    for suite in suites.values():
        if suite.add_arguments:
            suite.add_arguments(parser.add_argument_group(f"{suite.name} suite"))
    return parser


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


def options_from(args: argparse.Namespace) -> SuiteOptions:
    return SuiteOptions(
        suite=args.suite, preset=args.preset,
        representations=[r.strip() for r in args.reps.split(",") if r.strip()] if args.reps else None,
        images=args.images, steps=positive("steps", args.steps), seeds=positive("seeds", args.seeds),
        size=positive("size", args.size, SSIM_MIN_SIDE, " (SSIM cannot score smaller images)"),
        max_images=positive("max-images", args.max_images), device=args.device,
        out=args.out, data_root=args.data_root, fresh=args.fresh, wandb=args.wandb, wandb_project=args.wandb_project,
        wandb_entity=args.wandb_entity, settings=parse_settings(args.settings), plugins=list(args.plugins),
        executor=ExecutorConfig.from_args(args), args=args,
    )


def print_listing(suites) -> None:
    print("representations:")
    for name in representations.list_representations():
        entry = representations.get_entry(name)
        params = representations.count_parameters(representations.build(name, out_features=3))
        print(f"  {name:18s} {params:>9,} params (defaults, RGB)  {entry.summary}")
    print("image sets:\n  " + "\n  ".join(IMAGE_SETS) + "\n  PATH (a folder of PNG/JPEG files)")
    print("presets:")
    for preset in FITTING_PRESETS.values():
        print(f"  {preset.name:10s} {preset.description}")
    print("suites:")
    for suite in suites.values():
        print(f"  {suite.name:12s} {suite.help}")


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
            with tracking.activate(tracker), executor.activate(options.executor, suite.name):
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
    if not any(options.suite_dir().glob("*.jsonl")) or not any(options.suite_dir().glob("*.csv")):
        return  # e.g. --decode, which writes no results
    try:
        print(f"report: {write_report(options.out)}", file=sys.stderr)
    except (ValueError, OSError) as error:
        print(f"warning: report not written: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    suites = load_suites()
    parser = build_parser(suites)
    args = parser.parse_args(argv)
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
        parser.error("choose a suite with --suite (" + ", ".join(suites) + "), or --list")
    try:
        options = options_from(args)
        if args.dry_run:  # no lock, provenance, tracker or report: nothing is written
            if args.suite not in DRY_RUN_SUITES:
                raise ValueError(f"--dry-run: the {args.suite} suite cannot show a plan; drop --dry-run (the "
                                 f"{', '.join(DRY_RUN_SUITES)} suites can)")
            return suites[args.suite].run(options)
        return run_tracked(suites[args.suite], options, argv)
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
