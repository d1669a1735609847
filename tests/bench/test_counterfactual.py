import pytest

from medviz.bench.__main__ import main


def test_unknown_edit_type_is_refused_with_the_known_ones():
    with pytest.raises(SystemExit, match="unknown edit type 'add cats'; known: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "add cats"])


def test_an_edit_of_another_domain_is_refused_instead_of_an_empty_table():
    with pytest.raises(SystemExit, match="no edit of --domain cxr among remove ruler; cxr edits: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "remove ruler"])


def test_a_model_folder_is_benched_on_its_own_domains_edits_only():
    with pytest.raises(ValueError, match="one domain's pipeline, but the edits span cxr and skin"):
        main(["counterfactual", "--domain", "all", "--model", "cxr-phantom"])
    # The bundled CXR pipeline given for skin edits is refused once loaded, before any edit runs.
    with pytest.raises(ValueError, match="'cxr-phantom' is a cxr pipeline; the edits are skin edits"):
        main(["counterfactual", "--domain", "skin", "--edit", "remove ruler", "--model", "cxr-phantom"])
