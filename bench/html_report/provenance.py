"""The provenance section: how each suite's results were made — command line, fitbench version and commit, torch,
Python, platform, device and its measured matmul peak, preset, start and end, exit code.

Reads OUT/<suite>/provenance.jsonl: a line when an invocation starts and again when it ends (the last per
`invocation` counts; one that never ended shows no finish or exit code). Results written before provenance was
recorded have none: the page says "not recorded" rather than guessing.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from ..records import RecordLog
from .markup import Cell, Section, note, table

FIELDS = [("command", "command"), ("preset", "preset"), ("started", "started"), ("finished", "finished"),
          ("exit_code", "exit code"), ("fitbench_version", "fitbench"), ("commit", "commit"), ("torch", "torch"),
          ("python", "Python"), ("platform", "platform"), ("device", "device"), ("device_name", "device name"),
          ("cpu_threads", "CPU threads"), ("matmul_peak_gflops", "matmul peak (GFLOP/s)")]
NOT_RECORDED = "not recorded"


def provenance_section(out: Path, suites: list[str]) -> Section | None:
    if not suites:
        return None
    invocations, missing = [], []
    for suite in suites:
        entries = read_invocations(out / suite / "provenance.jsonl")
        invocations += [{"suite": suite, **entry} for entry in entries]
        if not entries:
            missing.append(suite)
    parts = []
    if invocations:
        # One column per invocation, one row per field: a command line needs the width, fields do not.
        columns = ["", *(f"{i['suite']} · {i.get('started') or '?'}" for i in invocations)]
        rows = [[label, *(Cell(_value(i, field)) for i in invocations)] for field, label in FIELDS]
        parts.append(table(columns, rows, "One column per suite invocation that wrote into this folder, oldest "
                                          "first within each suite.", css="provenance"))
    if missing:
        parts.append(note(f"Provenance {NOT_RECORDED} for: {escape(', '.join(missing))} (results written before "
                          "fitbench recorded it, or copied without provenance.jsonl)."))
    latest = invocations[-1] if invocations else None
    glance = (f"<b>Made by</b> fitbench {escape(str(latest.get('fitbench_version', '?')))} at commit "
              f"{_value(latest, 'commit')} on {escape(str(latest.get('device_name') or latest.get('device') or '?'))}"
              if latest else f"<b>Provenance</b>: {NOT_RECORDED}")
    return Section("provenance", "Provenance", "\n".join(parts), glance)


def read_invocations(path: Path) -> list[dict]:
    """One entry per invocation, oldest first: its last line (written when it ended, if it did) wins."""
    latest: dict[str, dict] = {}
    for number, entry in enumerate(RecordLog(path).read()):
        latest[entry.get("invocation") or f"line {number}"] = entry
    return list(latest.values())


def _value(entry: dict, field: str) -> str:
    value = entry.get(field)
    if value is None or value == "":
        return f"<span class=\"missing\">{NOT_RECORDED}</span>"
    if field == "matmul_peak_gflops" and isinstance(value, dict):
        return escape(", ".join(f"{precision} {gflops:,.0f}" for precision, gflops in value.items()
                                if isinstance(gflops, (int, float))))
    if field == "command":
        return f"<code>{escape(str(value))}</code>"
    if field == "commit":  # the short hash, keeping the mark of uncommitted changes
        head, _, dirty = str(value).partition("+")
        return f"<code title=\"{escape(str(value))}\">{escape(head[:12] + ('+' + dirty if dirty else ''))}</code>"
    return escape(str(value))
