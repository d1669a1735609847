import pytest

from medviz import domains
from medviz.bench.paraphrases import PARAPHRASES, paraphrases


@pytest.mark.parametrize("domain", ["skin", "cxr"])
def test_every_attribute_has_five_paraphrases_unlike_the_training_captions(domain):
    vocabulary = domains.get(domain)
    names = {attribute.name for attribute in vocabulary.attributes}
    assert set(PARAPHRASES[domain]) == names                          # every attribute the oracle reads
    rows = paraphrases(domain)
    for name in names:
        asked = [prompt for attribute, prompt, present in rows if attribute == name and present]
        assert len(asked) >= 5, name
    prompts = [prompt for _, prompt, _ in rows]
    assert len(set(prompts)) == len(prompts)
    # Training captions all open with the domain's subject ("Chest X-ray", "Dermoscopy image"): none of these do.
    assert not any(prompt.lower().startswith(vocabulary.subject.lower()) for prompt in prompts)
    with pytest.raises(ValueError, match="no paraphrases for domain 'mri'"):
        paraphrases("mri")
