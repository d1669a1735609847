import pytest

from medviz.bench.__main__ import main


def test_unknown_edit_type_is_refused_with_the_known_ones():
    with pytest.raises(SystemExit, match="unknown edit type 'add cats'; known: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "add cats"])


def test_an_edit_of_another_domain_is_refused_instead_of_an_empty_table():
    with pytest.raises(SystemExit, match="no edit of --domain cxr among remove ruler; cxr edits: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "remove ruler"])
