import pytest

from medviz.augment.plan import Rule, default_plan, group_counts, make_jobs, parse_rule

ATTRIBUTES = ["pleural_effusion", "support_devices", "cardiomegaly"]
T, S = "pleural_effusion", "support_devices"


def rows(counts: dict) -> list[dict]:
    """Rows with (target, spurious) labels, ``counts[(t, s)]`` of each, groups interleaved."""
    out = []
    for (t, s), n in counts.items():
        out += [{T: t, S: s}] * n
    return out


def test_a_rule_reads_its_action_attribute_conditions_and_limit():
    rule = parse_rule("remove support_devices where pleural_effusion and no cardiomegaly max 7", ATTRIBUTES)
    assert rule == Rule("remove", "support_devices", (("pleural_effusion", True), ("cardiomegaly", False)), 7)
    assert rule.text() == "remove support_devices where pleural_effusion and no cardiomegaly max 7"
    assert parse_rule(rule.text(), ATTRIBUTES) == rule
    assert parse_rule("add cardiomegaly", ATTRIBUTES) == Rule("add", "cardiomegaly")


@pytest.mark.parametrize("text, message", [
    ("delete support_devices", "start with 'add' or 'remove'"),
    ("remove ruler", "unknown attribute 'ruler'; choose among pleural_effusion"),
    ("remove support_devices if pleural_effusion", "expected 'where'"),
    ("remove support_devices where not very pleural_effusion", "a condition is 'NAME' or 'no NAME'"),
    ("add cardiomegaly max many", "'max' takes a whole number"),
])
def test_a_bad_rule_is_named_with_what_to_write(text, message):
    with pytest.raises(ValueError, match=message):
        parse_rule(text, ATTRIBUTES)


def test_a_rule_skips_rows_it_would_not_change_or_cannot_judge():
    rule = parse_rule("remove support_devices where pleural_effusion", ATTRIBUTES)
    assert rule.applies({T: True, S: True})
    assert not rule.applies({T: True, S: False})          # nothing to remove
    assert not rule.applies({T: False, S: True})          # condition unmet
    assert not rule.applies({T: None, S: True})           # label unknown (uncertain, blank)


def test_jobs_follow_the_rules_in_order_with_one_seed_each():
    labels = rows({(True, True): 3, (False, False): 2})
    jobs = make_jobs(labels, [parse_rule("remove support_devices max 2", ATTRIBUTES),
                              parse_rule("add pleural_effusion", ATTRIBUTES)], seed=100)
    assert [(j.index, j.row, j.rule.edit, j.seed) for j in jobs] == [
        (0, 0, "remove support_devices", 100), (1, 1, "remove support_devices", 101),
        (2, 3, "add pleural_effusion", 102), (3, 4, "add pleural_effusion", 103)]


def test_the_default_plan_fills_the_small_groups_by_the_most_faithful_edit_and_never_an_unfaithful_one():
    labels = rows({(False, False): 60, (False, True): 4, (True, False): 2, (True, True): 30})
    assert group_counts(labels, T, S) == {(False, False): 60, (False, True): 4, (True, False): 2, (True, True): 30}
    faithful = {"remove support_devices": 0.99, "add support_devices": 0.01, "remove pleural_effusion": 0.98,
                "add pleural_effusion": 0.9}
    rules = default_plan(labels, T, S, faithful, 0.5)
    # (effusion, no devices) needs 28: remove devices from (effusion, devices), 0.99 beats adding effusion's 0.9;
    # (no effusion, devices) needs 26: adding devices is unfaithful, so effusion is removed from (effusion, devices)
    assert [r.text() for r in rules] == [
        "remove support_devices where pleural_effusion and support_devices max 28",
        "remove pleural_effusion where pleural_effusion and support_devices max 26"]
    jobs = make_jobs(labels, rules, 0)
    after = group_counts(labels, T, S)
    for job in jobs:
        t, s = labels[job.row][T], labels[job.row][S]
        after[(not t, s) if job.rule.attribute == T else (t, not s)] += 1
    assert after[(True, False)] == after[(False, True)] == 30                    # up to the smaller large group


def test_the_default_plan_takes_the_other_edit_where_the_first_runs_short():
    labels = rows({(False, False): 50, (False, True): 40, (True, False): 1, (True, True): 3})
    faithfulness = {"remove support_devices": 0.9, "add pleural_effusion": None}    # unmeasured ranks after
    rules = default_plan(labels, T, S, faithfulness, 0.5)
    assert [r.text() for r in rules][:2] == [
        "remove support_devices where pleural_effusion and support_devices max 3",
        "add pleural_effusion where no pleural_effusion and no support_devices max 36"]
