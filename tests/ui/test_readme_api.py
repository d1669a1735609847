"""The README's gradio_client example runs as written (identifiers only), against the app on tiny models."""

import re
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_the_readmes_api_example_runs_as_written(app_url):
    from gradio_client import Client

    example = re.search(r"`(Client\(url\)\.predict\(.*?\))`", README.read_text(), re.S).group(1)
    gallery, files, info, history = eval(" ".join(example.split()), {"Client": Client, "url": app_url})
    assert len(gallery) == 4 and "seed 7" in gallery[0]["caption"] and "pleural_effusion" in gallery[0]["caption"]
    assert "pleural effusion" in info                      # the prompt, in the training captions' words
