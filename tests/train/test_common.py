"""The training loops' shared parts."""


def test_log_rate_counts_the_steps_since_its_last_line_also_when_resumed(monkeypatch, capsys):
    from medviz.train import common

    clock = iter([0.0, 4.0, 5.0])                     # the Log made; its first line; its second line
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(clock))
    log = common.Log("unit", total=304, every=2)
    for step, loss in ((301, 1.0), (302, 3.0), (303, 0.5), (304, 0.5)):       # resumed from a checkpoint at 300
        log.step(step, loss=loss)
    assert capsys.readouterr().out.splitlines() == ["[unit] step 302/304 loss=2.0000 (0.50 steps/s)",
                                                    "[unit] step 304/304 loss=0.5000 (2.00 steps/s)"]
