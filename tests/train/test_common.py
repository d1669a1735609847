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


def test_the_learning_rate_of_a_resumed_run_goes_on_where_it_stopped():
    import math

    import torch

    from medviz.train.common import BudgetedSchedule

    def rates(start: int, total: int = 40) -> list[float]:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        schedule = BudgetedSchedule(optimizer, warmup=4, max_steps=total)
        seen = []
        for step in range(start + 1, total + 1):
            optimizer.step()
            schedule.step(step)
            seen.append(optimizer.param_groups[0]["lr"])
        return seen

    whole = rates(0)
    assert whole[:3] == [0.5, 0.75, 1.0]                                      # warm-up: (step + 1) / 4
    assert whole[9] == 0.5 * (1 + math.cos(math.pi * 6 / 36)) and whole[-1] == 0.0   # cosine to 0 at step 40
    assert rates(10) == whole[10:]                     # resumed at its checkpoint 10: no second warm-up, annealed
