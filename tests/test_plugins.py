"""A representation written outside the repository runs through every suite from --plugin FILE, and a stream it
wrote decodes in a fresh process that is given the plugin (and fails with one line in one that is not)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
from dataclasses import dataclass

import torch
from torch import nn

from fitbench.representations import RepresentationConfig, SizeKnob, register


@dataclass
class CosineConfig(RepresentationConfig):
    terms: int = 16
    lr: float = 1e-2


class Cosines(nn.Module):
    def __init__(self, config, out_features):
        super().__init__()
        self.frequency = nn.Parameter(torch.randn(config.terms, 2) * 4)
        self.phase = nn.Parameter(torch.zeros(config.terms))
        self.amplitude = nn.Parameter(torch.randn(config.terms, out_features) * 0.1)
        self.offset = nn.Parameter(torch.full((out_features,), 0.5))

    def forward(self, coords):
        return torch.cos(coords @ self.frequency.T + self.phase) @ self.amplitude + self.offset


@register("outside_cosines", CosineConfig, source="a test plugin", knob=SizeKnob("terms", 1, 4096),
          sizes={"tiny": {"terms": 32}, "standard": {"terms": 512}}, search={"lr": (1e-3, 1e-2), "terms": (8, 16)})
def outside_cosines(config, out_features):
    """Learned cosines of (x, y)."""
    return Cosines(config, out_features)
'''


def test_a_plugin_file_runs_in_every_suite_and_its_stream_decodes_elsewhere(run_cli, tmp_path):
    plugin = tmp_path / "elsewhere" / "cosine_rep.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN)
    common = ["--plugin", plugin, "--preset", "smoke", "--reps", "outside_cosines", "--max-images", "1"]

    code, _, err = run_cli("--suite", "fitting", *common, "--out", tmp_path / "out")
    assert code == 0, err
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "fitting" / "runs.jsonl").read_text().splitlines()
                 if json.loads(line)["representation"] == "outside_cosines"]
    assert record["status"] == "ok" and record["params"] == 32 * 2 + 32 + 32 * 1 + 1  # camera: one channel

    code, _, err = run_cli("--suite", "compression", *common, "--out", tmp_path / "out")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "out" / "compression" / "points.jsonl").read_text().splitlines()]
    ours = [r for r in records if r["method"] == "outside_cosines"]
    assert ours and all(r["status"] == "ok" for r in ours)
    assert len({r["config"]["terms"] for r in ours}) > 1  # the ladder moved the plugin's declared knob

    code, _, err = run_cli("--suite", "speed", *common, "--no-compile", "--out", tmp_path / "out")
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "out" / "speed" / "speed.csv")["representation"]) == {"outside_cosines"}

    thresholds = tmp_path / "thresholds.json"
    code, _, err = run_cli("--suite", "ci", "--plugin", plugin, "--reps", "outside_cosines", "--thresholds",
                           thresholds, "--update-thresholds", "--out", tmp_path / "ci")
    assert code == 0, err
    assert "outside_cosines" in thresholds.read_text()

    stream = tmp_path / "out" / "compression" / ours[0]["points"][0]["stream"]
    decode = [sys.executable, str(REPO / "run_bench.py"), "--suite", "compression", "--decode", str(stream),
              "--out", str(tmp_path / "decoded")]
    without = subprocess.run(decode, capture_output=True, text=True, timeout=120)
    assert without.returncode != 0 and f"--plugin {plugin.resolve()}" in without.stderr
    assert len(without.stderr.strip().splitlines()) == 1
    with_plugin = subprocess.run(decode[:2] + ["--plugin", str(plugin)] + decode[2:], capture_output=True, text=True,
                                 timeout=120)
    assert with_plugin.returncode == 0, with_plugin.stderr
    assert list((tmp_path / "decoded").rglob("*.png"))
