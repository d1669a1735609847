"""Build a CLIP tokenizer whose byte-pair vocabulary is learned from our own prompt corpus.

The files (``vocab.json``, ``merges.txt``) follow OpenAI CLIP's format, so the stock
``transformers.CLIPTokenizer`` reads them: lower-cased words, byte-to-unicode alphabet, ``</w>`` at word
ends, ``<|startoftext|>``/``<|endoftext|>`` specials. Every byte and byte-``</w>`` is in the vocabulary, so
an unseen word splits into known pieces instead of becoming unknown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .. import domains
from ..phantoms import get_domain
from ..prompts import training_caption

START, END = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def build_clip_tokenizer(corpus: Iterable[str], out_dir: str | Path, vocab_size: int = 1024,
                         max_length: int = 77):
    """Learn BPE merges from ``corpus``, write CLIP-format files to ``out_dir``, return the tokenizer."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    byte_chars = list(_bytes_to_unicode().values())
    alphabet = byte_chars + [c + "</w>" for c in byte_chars]
    tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    # CLIP's pattern splits letters, digits and punctuation into separate words.
    # Exactly CLIPTokenizer's pre-tokenizer: keep letters, single digits and punctuation runs as words.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=max(vocab_size - 2, len(alphabet) + 16), end_of_word_suffix="</w>",
                                  initial_alphabet=byte_chars, show_progress=False, special_tokens=[])
    tokenizer.train_from_iterator(list(corpus), trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    # CLIP's vocabulary: bytes, bytes + </w>, then merged tokens in merge order, then the specials.
    tokens = list(alphabet)
    seen = set(tokens)
    for merge in merges:
        merged = merge.replace(" ", "")
        if merged not in seen:
            tokens.append(merged)
            seen.add(merged)
    tokens += [START, END]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    clip = CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ")) for m in merges],
                         model_max_length=max_length,
                         pad_token=END)
    clip.save_pretrained(str(out))
    return clip


def prompt_corpus(domain: str, n: int = 4000, seed: int = 0) -> list[str]:
    """Captions of ``n`` phantoms plus every synonym: the text the tokenizer vocabulary is built from."""
    graph = get_domain(domain).build_graph()
    rng = np.random.default_rng(seed)
    corpus = [training_caption(domain, graph.sample(seed + i).factors, rng) for i in range(n)]
    for attribute in domains.get(domain).attributes:
        if attribute.synonyms:
            corpus += [attribute.phrase, *attribute.synonyms]
        if attribute.absent_synonyms:
            corpus += [attribute.absent, *attribute.absent_synonyms]
    corpus += ["Normal chest X-ray with no significant findings", "Chest X-ray of a 63-year-old female patient",
               "without absent negative for free of removed", "left right bilateral small large"]
    return corpus
