"""Statistics a reviewer accepts: the image as the unit, Holm across a table, Friedman ranks with Demšar's critical
difference, failed fits counted, and the verdict decided by the test that is printed."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fitbench.report import leaderboard_markdown, rank_tests, summarize
from fitbench.stats import (ci_half_width, friedman, holm, paired_comparison, smallest_wilcoxon_p, wilcoxon_p,
                            with_holm)


def test_interval_matches_scipy_and_a_hand_case():
    values = [20.0, 21.0, 23.0, 22.5, 19.5]
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert ci_half_width(values) == pytest.approx((high - low) / 2)
    assert ci_half_width([1.0, 3.0]) == pytest.approx(12.7062 * 1.0, rel=1e-4)  # t(0.975, 1) * s / sqrt(2), s = sqrt 2
    assert np.isnan(ci_half_width([5.0]))


def test_wilcoxon_exact_p_and_its_floor():
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32) == smallest_wilcoxon_p(5)
    assert wilcoxon_p([0.5, -0.1, 0.2, -0.3, 0.4]) > 0.3
    assert np.isnan(wilcoxon_p([0.0, 0.2]))
    # A failed fit (-inf) is the largest negative rank: the same p as any difference larger than all others.
    assert wilcoxon_p([0.1, 0.2, 0.3, -math.inf, 0.5, 0.6]) == pytest.approx(wilcoxon_p([0.1, 0.2, 0.3, -9, 0.5, 0.6]))


def test_interval_over_images_covers_when_the_flat_one_does_not():
    """Image variance dominant, seeds nearly alike: the interval over per-image means covers the true mean about
    95 % of the time, the old interval over images x seeds far less (the review measured 79-82 %)."""
    rng = np.random.default_rng(0)
    covered_images = covered_flat = 0
    trials = 1000
    for _ in range(trials):
        image_effect = rng.normal(0, 1, 5)[:, None]
        runs = image_effect + rng.normal(0, 0.1, (5, 3))  # 5 images x 3 seeds, true mean 0
        comparison = paired_comparison({f"i{i}": list(row) for i, row in enumerate(runs)})
        covered_images += abs(comparison.mean) <= comparison.ci95
        covered_flat += abs(runs.mean()) <= ci_half_width(runs.ravel())
    assert 0.93 <= covered_images / trials <= 0.97
    assert covered_flat / trials < 0.85


def test_holm_by_hand():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, math.nan, 0.005]) == pytest.approx([0.03, 0.06, 0.06, math.nan, 0.02], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_verdict_comes_from_the_adjusted_test():
    clear = {f"i{i}": [1.0 + 0.01 * i] for i in range(8)}  # eight positive differences: p = 2/256
    noisy = {f"i{i}": [(-1) ** i * 0.5 + 0.01 * i] for i in range(8)}
    alone = paired_comparison(clear)
    assert alone.p == pytest.approx(2 / 256) and alone.verdict() == "above"
    adjusted = with_holm({"clear": alone, "noisy": paired_comparison(noisy)})
    assert adjusted["clear"].p_adjusted == pytest.approx(2 * 2 / 256) and adjusted["clear"].verdict() == "above"
    assert adjusted["noisy"].verdict() == "not distinguishable"
    # With five images no outcome can reach 5 %: the verdict says so instead of reading the interval.
    five = paired_comparison({f"i{i}": [-1.0 - i] for i in range(5)})
    assert five.ci95 < 5 and five.verdict() == "too few images"


def test_friedman_matches_scipy_and_the_critical_difference_matches_demsar():
    rng = np.random.default_rng(1)
    scores = {m: {f"i{i}": rng.normal(j * 0.3, 1) for i in range(20)} for j, m in enumerate("abcde")}
    test = friedman(scores)
    table = np.array([[scores[m][f"i{i}"] for m in "abcde"] for i in range(20)])
    expected = scipy_stats.friedmanchisquare(*table.T)
    assert test.statistic == pytest.approx(expected.statistic) and test.p == pytest.approx(expected.pvalue)
    # Demšar (2006), Table 5(a): q_0.05 = 2.728 for k = 5; CD = q sqrt(k (k + 1) / (6 N)).
    assert test.critical_difference == pytest.approx(2.728 * math.sqrt(5 * 6 / (6 * 20)), rel=1e-3)
    assert test.mean_ranks["e"] < test.mean_ranks["a"]  # e scores highest, so ranks best (1 = best)
    assert sum(test.mean_ranks.values()) == pytest.approx(15)  # ranks 1..5 on every image


def test_a_failed_fit_ranks_last_on_its_image():
    scores = {"good": {"x": 30.0, "y": 31.0, "z": 29.0}, "ok": {"x": 25.0, "y": 26.0, "z": 24.0},
              "broken": {"x": math.nan, "y": 40.0, "z": math.nan}}
    test = friedman(scores)
    assert test.mean_ranks == pytest.approx({"good": (1 + 2 + 1) / 3, "ok": (2 + 3 + 2) / 3, "broken": (3 + 1 + 3) / 3})


def record(representation, image, seed, psnr, kind="representation", image_set="builtin", status="ok", **extra):
    return {"representation": representation, "kind": kind, "image": image, "image_set": image_set,
            "protocol": "alternate", "preset": "quick", "seed": seed, "steps": 0 if kind == "reference" else 200,
            "max_steps": 0 if kind == "reference" else 200, "params": 0 if kind == "reference" else 100,
            "status": status, "psnr_test": psnr, "psnr_full": psnr, "ssim_full": 0.5, "psnr_train": psnr,
            "seconds": 1.0, "key": f"{representation}-{image_set}-{image}-{seed}", **extra}


def table_records(images=8, image_set="builtin"):
    rng = np.random.default_rng(2)
    rows = []
    for i in range(images):
        base = 25 + 3 * rng.normal()
        image = f"img{i}"
        rows += [record("bicubic", image, 0, base, "reference", image_set),
                 record("bilinear", image, 0, base - 0.3, "reference", image_set)]
        rows += [record("good", image, s, base + 1 + rng.normal(0, 0.05), image_set=image_set) for s in range(2)]
        rows += [record("coin", image, s, base + rng.normal(0, 1), image_set=image_set) for s in range(2)]
        failing = i < 2
        rows += [record("flaky", image, s, None if failing else base - 0.5, image_set=image_set,
                        status="error" if failing else "ok") for s in range(2)]
    return rows


def test_summary_uses_images_as_the_unit_and_counts_failures():
    rows = table_records()
    summary = summarize(rows).set_index("representation")
    good = summary.loc["good"]
    per_image = [np.mean([r["psnr_test"] for r in rows if r["representation"] == "good" and r["image"] == f"img{i}"])
                 for i in range(8)]
    assert good["psnr_test_ci95"] == pytest.approx(ci_half_width(per_image))
    assert good["reference"] == "bicubic" and good["verdict"] == "above bicubic"
    assert good["delta_ref_p"] == pytest.approx(2 / 256) and good["delta_ref_p_holm"] == pytest.approx(3 * 2 / 256)
    assert summary.loc["coin", "verdict"] == "not distinguishable from bicubic"
    flaky = summary.loc["flaky"]
    assert (flaky["images"], flaky["failed_images"], flaky["errors"], flaky["runs"]) == (8, 2, 4, 16)
    assert flaky["verdict"] == "below bicubic"  # the two failures count as the worst, not dropped
    assert summary["mean_rank"].notna().all()


def test_no_row_reads_a_verdict_its_printed_p_does_not_support():
    summary = summarize(table_records())
    for row in summary[summary["kind"] != "reference"].itertuples():
        decided = row.verdict.startswith(("above", "below"))
        assert decided == (row.delta_ref_p_holm < 0.05), row


def test_leaderboard_names_the_reference_and_the_rank_test():
    rows = table_records()
    markdown = leaderboard_markdown(summarize(rows), rank_tests(rows))
    assert "Verdicts against **bicubic**" in markdown and "Friedman over 5 methods × 8 images" in markdown
    assert "| flaky |" in markdown and "8 (2 failed)" in markdown


def test_image_sets_of_one_preset_also_get_a_table_together():
    rows = table_records(6, "ffn-natural-test") + table_records(6, "ffn-text-test")
    summary = summarize(rows)
    assert set(summary["image_set"]) == {"ffn-natural-test", "ffn-text-test", "ffn-natural-test + ffn-text-test"}
    together = summary[summary["image_set"] == "ffn-natural-test + ffn-text-test"].set_index("representation")
    assert together.loc["good", "images"] == 12 and together.loc["flaky", "failed_images"] == 4


def test_readme_tables_come_from_the_records_beside_them():
    """Each table the README marks `<!-- table: NAME -->` (or `<!-- table: NAME | IMAGE SET -->` for one of its
    tables) is what the current statistics make of results/reference/runs/NAME/fitting/runs.jsonl: the records are
    there and the figures are theirs."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    tables = re.findall(r"<!-- table: (\S+)(?: \| (.+?))? -->\n(.*?)<!-- /table -->", readme, re.S)
    assert tables, "the README's result tables are marked with <!-- table: NAME -->"
    for name, image_set, shown in tables:
        runs = root / "results" / "reference" / "runs" / name / "fitting"
        records = [json.loads(line) for line in (runs / "runs.jsonl").read_text().splitlines() if line.strip()]
        assert (runs / "provenance.jsonl").is_file(), f"{name}: the command that made the records"
        summary = summarize(records)
        if image_set:
            summary = summary[summary["image_set"] == image_set]
        rows = [line for line in leaderboard_markdown(summary, rank_tests(records)).splitlines()
                if line.startswith("|")]
        assert shown.strip().splitlines() == rows, f"README table {name} differs from its records"
