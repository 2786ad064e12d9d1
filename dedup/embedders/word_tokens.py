"""A model2vec model that tokenizes plain ASCII prose a word at a time, through a cache.

A static embedding is the mean of its tokens' vectors, so tokenizing is most of its cost (the
tokenizer normalises, splits and runs WordPiece over every character of every text). For a BERT
tokenizer (BertNormalizer, BertPreTokenizer, WordPiece) ASCII text without control characters
splits into runs of letters and digits and single punctuation marks, and WordPiece gives a word the
same tokens wherever it occurs: so each distinct word goes through the tokenizer once and every text
made of known words is a few dictionary lookups. Texts with any other character, and models with
other tokenizers, take the tokenizer's own path. Token ids, and so the vectors, are identical either
way (checked against model2vec in tests/dedup/test_embedders.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from model2vec import StaticModel

# After lower-casing: a run of letters and digits, or one punctuation mark (every printable ASCII
# character that is neither is punctuation to BertPreTokenizer).
WORD = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")
WORD_CASED = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9\s]")
# What the word path does not cover: non-ASCII characters (accents, CJK, Unicode punctuation and
# spaces) and control characters, which BertNormalizer removes rather than splits on.
NOT_PLAIN = re.compile(r"[^\t\n\r\x20-\x7e]")
# Distinct words kept; past this the cache starts again (prose uses far fewer).
MAX_CACHED_WORDS = 500_000


def splits_words_like_bert(tokenizer_json: dict[str, Any]) -> bool | None:
    """Whether lower-casing applies (True/False) when the tokenizer is BERT's, None when it is not."""
    normalizer = tokenizer_json.get("normalizer") or {}
    pre_tokenizer = tokenizer_json.get("pre_tokenizer") or {}
    model = tokenizer_json.get("model") or {}
    if (
        normalizer.get("type") != "BertNormalizer"
        or pre_tokenizer.get("type") != "BertPreTokenizer"
        or model.get("type") != "WordPiece"
    ):
        return None
    return bool(normalizer.get("lowercase", True))


class WordCachedStaticModel(StaticModel):
    """model2vec's StaticModel with `tokenize` served from a per-word cache where that is exact."""

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        state: tuple[bool | None, dict[str, list[int]]] | None = self.__dict__.get("_words")
        if state is None:  # the first call: whether the word path applies, and an empty cache
            state = self.__dict__["_words"] = (splits_words_like_bert(json.loads(self.tokenizer.to_str())), {})
        lowercase, cache = state
        if lowercase is None:
            return super().tokenize(sentences)
        word = WORD if lowercase else WORD_CASED
        out: list[list[int]] = []
        other: list[int] = []
        for text in sentences:
            if NOT_PLAIN.search(text):
                other.append(len(out))
                out.append([])
                continue
            ids: list[int] = []
            for piece in word.findall(text.lower() if lowercase else text):
                tokens = cache.get(piece)
                if tokens is None:
                    if len(cache) >= MAX_CACHED_WORDS:
                        cache.clear()
                    tokens = cache[piece] = self.tokenizer.encode(piece, add_special_tokens=False).ids
                ids.extend(tokens)
            out.append(ids)
        # As the tokenizer does: truncate to the model's length, then (model2vec) drop unknown tokens.
        limit = self.max_length
        unknown = self.unk_token_id
        for i, ids in enumerate(out):
            if limit is not None and len(ids) > limit:
                ids = ids[:limit]
            out[i] = [t for t in ids if t != unknown] if unknown is not None else ids
        if other:
            for i, ids in zip(other, super().tokenize([sentences[i] for i in other]), strict=True):
                out[i] = ids
        return out
