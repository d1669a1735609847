import json

import numpy as np
import pytest

from medviz.bench.align import compare, smoothed


def _run(folder, method, rewards, passes_per_step):
    history = [
        {"step": i + 1, "reward": r, "loss": -r, "unet_passes": passes_per_step * (i + 1), "seconds": 2.0 * (i + 1)}
        for i, r in enumerate(rewards)
    ]
    folder.mkdir()
    (folder / "medviz_train.json").write_text(json.dumps({"config": {}, "method": method, "history": history}))
    return folder


def test_moving_mean_and_the_common_budget():
    passes, reward = smoothed([{"reward": r, "unet_passes": 10 * (i + 1)} for i, r in enumerate([0, 1, 1, 0])], 2)
    assert list(passes) == [10, 20, 30, 40] and np.allclose(reward, [0, 0.5, 1, 0.5])
    fast = {"name": "draft", "method": "backprop", "history": [
        {"reward": r, "unet_passes": 100 * (i + 1), "seconds": 1} for i, r in enumerate([0.5, 0.9, 1.0, 1.0])]}
    slow = {"name": "ddpo", "method": "ddpo", "history": [
        {"reward": r, "unet_passes": 200 * (i + 1), "seconds": 1} for i, r in enumerate([0.5, 0.6])]}
    result = compare([fast, slow], window=1, level=0.95)
    assert result["budget_passes"] == 400
    draft, ddpo = result["rows"]
    assert draft["reward_at_budget"] == 1.0 and draft["passes_to_level"] == 300       # step 3 at 300 passes
    assert ddpo["reward_at_budget"] == pytest.approx(0.6) and ddpo["passes_to_level"] is None


def test_the_bench_reads_run_folders_and_names_a_missing_one(tmp_path, capsys):
    from medviz.bench.__main__ import main

    a = _run(tmp_path / "skin-draft", "backprop", [0.8, 0.9, 1.0], 400)
    b = _run(tmp_path / "skin-ddpo", "ddpo", [0.8, 0.85], 800)
    assert (
        main(
            [
                "align",
                "--runs",
                str(a),
                str(b),
                "--window",
                "1",
                "--json",
                str(tmp_path / "out.json"),
                "--figure",
                str(tmp_path / "curve.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "common budget of 1,200 UNet passes" in out and "skin-draft" in out and "never" in out
    saved = json.loads((tmp_path / "out.json").read_text())
    assert (
        saved["command"].startswith("python -m medviz.bench align") and (tmp_path / "curve.png").stat().st_size > 5000
    )
    with pytest.raises(SystemExit, match="medviz_train.json not found"):
        main(["align", "--runs", str(tmp_path / "nothing")])
