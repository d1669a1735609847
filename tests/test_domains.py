"""The registry: one vocabulary per domain, and a new domain picked up everywhere without other edits."""

import pytest

from medviz import domains, prompts
from medviz.domains import Attribute, ClassifierPreset, Domain
from medviz.engines.counterfactual import EditConfig, edit_defaults, editable
from medviz.engines.explain import preset, preset_names
from medviz.ui.tabs.generate import GenerateRequest, attribute_choices, head_choices
from medviz.ui.tabs.traverse import slider_attributes

TOY = Domain(
    name="retina", title="fundus photograph", subject="Fundus photograph", lead=" showing ",
    attributes=(Attribute("drusen", "drusen", ("drusen", "yellow deposits"), factor=True, editable=True),
                Attribute("hemorrhage", "retinal hemorrhage", ("retinal hemorrhage", "hemorrhage", "bleeding"),
                          label="hemorrhage", factor=True)),
    presets={"drusen": ClassifierPreset(("drusen", "no drusen"), "drusen", ({}, {"hemorrhage": True}))},
    edit_defaults={"guidance_scale": 4.5},
    normal_phrases=("normal fundus",), normal_negates=("drusen", "hemorrhage"))


@pytest.fixture()
def retina():
    with domains.registered(TOY) as domain:
        yield domain


def test_a_toy_domain_is_picked_up_by_the_grammar_the_parser_and_the_tabs(retina):
    assert "retina" in domains.names() and domains.get("retina") is retina
    # The caption grammar and its reverse.
    assert prompts.describe("retina", {"drusen": True, "hemorrhage": True}) == \
        "Fundus photograph showing drusen, retinal hemorrhage"
    assert prompts.describe("retina", {"drusen": True}, negated=["hemorrhage"]) == \
        "Fundus photograph showing drusen, no retinal hemorrhage"
    assert prompts.parse_prompt("fundus with yellow deposits but no bleeding", "retina") == \
        {"drusen": True, "hemorrhage": False}
    assert prompts.parse_prompt("a normal fundus", "retina") == {"drusen": False, "hemorrhage": False}
    assert prompts.class_prompts("retina", "drusen") == ("Fundus photograph showing drusen",
                                                         "Fundus photograph with no drusen")
    # The Generate tab's choices, the Edit tab's list, the sliders, the presets and the edit defaults.
    assert attribute_choices("retina") == [("drusen", "drusen"), ("hemorrhage", "hemorrhage")]
    assert head_choices("retina") is None
    assert GenerateRequest(("hemorrhage",), free_text="left eye").prompt("retina") == \
        "Fundus photograph showing retinal hemorrhage, left eye"
    assert editable("retina") == ("drusen",) and slider_attributes("retina") == ["drusen", "hemorrhage"]
    assert preset_names("retina") == ["drusen"]
    assert preset("retina", "drusen")[1][1] == ("Fundus photograph with no drusen",
                                                "Fundus photograph showing retinal hemorrhage, no drusen")
    assert edit_defaults("retina").guidance_scale == 4.5 and edit_defaults("retina").strength == 0.8
    with pytest.raises(ValueError, match="cannot edit"):
        EditConfig(add=("hemorrhage",)).validate("retina")



def test_unknown_domains_are_named_in_the_error():
    assert "retina" not in domains.names()
    with pytest.raises(ValueError, match=r"unknown domain 'retina'; choose one of \['cxr', 'skin'\]"):
        domains.get("retina")
    assert domains.find("retina") is None and attribute_choices("retina") == [] and editable("retina") == ()
    with pytest.raises(ValueError, match="cxr has no attribute 'drusen'"):
        domains.get("cxr").attribute("drusen")


def test_each_attribute_has_one_phrase_and_its_synonyms_name_only_it():
    for name in domains.names():
        domain = domains.get(name)
        words = {}
        for attribute in domain.attributes:
            assert attribute.phrase in attribute.synonyms or not attribute.synonyms, attribute.name
            for word in (*attribute.synonyms, *attribute.absent_synonyms):
                assert words.setdefault(word, attribute.name) == attribute.name, (name, word)
        assert set(domain.oracle_labels) >= {a.name for a in domain.factors}
        for changes in domain.named_interventions().values():
            assert changes


def test_line_structures_are_fidelity_rows_drawn_in_the_domains_polarity():
    from medviz import domains

    assert domains.get("skin").line_structures == ("ruler", "hair", "ink")
    assert domains.get("cxr").line_structures == ("support_devices",)
    for name in ("skin", "cxr"):
        vocabulary = domains.get(name)
        # The models bench measures a line structure on its fidelity row's samples: each must have one.
        assert set(vocabulary.line_structures) <= set(vocabulary.fidelity)
        assert vocabulary.thin_lines in ("dark", "bright")
