from dataclasses import replace

from medviz.ui.tabs.about import model_about


def test_model_tab_shows_the_cards_measured_sections_with_what_misses_a_bar(tiny_cxr):
    record = dict(tiny_cxr.card["edit_bench"]["add_support_devices"], faithfulness=0.01,
                  meets={"effectiveness": True, "preservation_all": True, "faithfulness": False})
    text = model_about(replace(tiny_cxr, card={**tiny_cxr.card, "edit_bench": {"add support devices": record}}))
    assert "#### Counterfactual edits as measured" in text and "**1%** (below the bar)" in text
    rows = [dict(row) for row in tiny_cxr.card["models_bench"]["rows"]]
    rows[0].update(agreement=0.5, meets={"agreement": False, "diversity_ratio": True})
    text = model_about(replace(tiny_cxr, card={**tiny_cxr.card, "models_bench": {**tiny_cxr.card["models_bench"],
                                                                                    "rows": rows}}))
    assert "#### Measured quality" in text and f"| {rows[0]['attribute']} | {rows[0]['prompt']} | **50.0%** |" in text
    bare = replace(tiny_cxr, card={})
    assert "Measured quality" not in model_about(bare) and "Counterfactual edits" not in model_about(bare)
    assert "- domain: **cxr** · output 32 px" in model_about(bare)


def test_the_about_tab_says_whether_the_model_has_a_domain_check_and_what_is_deleted_when(tiny_cxr):
    from medviz.models import read_model_card

    assert "there is no domain check for this model" in model_about(tiny_cxr)
    text = model_about(replace(tiny_cxr, card=read_model_card("cxr-phantom")))        # the bundled card, its check too
    assert "#### Domain check as measured" in text and "false alarms" in text and "no domain check" not in text
    assert "deleted from the server at once" in text and "at the latest 10 minutes after it was written" in text
