"""Training scales out: under ``accelerate launch`` with 2 CPU processes each rank draws its own rows, the
effective batch is reported, and one process writes."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from medviz.bench.scale import launch
from medviz.train.common import RowSampler


def test_one_process_draws_every_row_as_before():
    sampler = RowSampler(50, SimpleNamespace(process_index=0, num_processes=1), seed=3)
    assert np.array_equal(sampler.draw(20), np.random.default_rng(3).integers(0, 50, 20))
    record = sampler.record()
    assert record["rows"] == [0, 49] and 0 < record["distinct_seen"] <= 20


def test_processes_own_disjoint_blocks_of_rows():
    drawn = [RowSampler(10, SimpleNamespace(process_index=r, num_processes=3), seed=0).draw(200) for r in range(3)]
    assert [sorted(set(d.tolist())) for d in drawn] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(ValueError, match="3 training rows cannot be shared by 4 processes"):
        RowSampler(3, SimpleNamespace(process_index=3, num_processes=4), seed=0)


@pytest.mark.multiprocess
def test_two_processes_train_one_classifier_on_disjoint_rows(tmp_path):
    out = tmp_path / "clf"
    run = launch(["-m", "medviz.train", "classifier", "--domain", "cxr", "--out", str(out), "--target",
                  "pleural_effusion", "--spurious", "support_devices", "--preset", "tiny", "--image-size", "16",
                  "--n-images", "80", "--n-test", "16", "--steps", "40", "--batch-size", "8", "--workers", "1"], 2)
    assert run.returncode == 0, run.stderr[-3000:]
    card = json.loads((out / "medviz_classifier.json").read_text())
    scale = card["scale"]
    assert scale["processes"] == 2 and scale["per_process_batch"] == 8 and scale["effective_batch"] == 16
    first, second = scale["shards"]
    assert first["rows"] == [0, 39] and second["rows"] == [40, 79]
    assert 0 <= first["first_seen"] <= first["last_seen"] <= 39 < 40 <= second["first_seen"] <= second["last_seen"]
    assert first["distinct_seen"] > 20 and second["distinct_seen"] > 20            # 40 steps x 8 of 40 rows each
    assert "effective batch 16" in run.stdout and run.stdout.count("[classifier groupdro]") == 0
    assert run.stdout.count("[classifier erm] step 40/40") == 1                     # one process logs
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "medviz_classifier.json", "model.safetensors"]
