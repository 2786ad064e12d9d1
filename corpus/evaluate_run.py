"""`populace evaluate`: the same quality metrics for our corpus and for reference corpora, side by side."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from corpus.catalog import query_run
from corpus.evaluation import CorpusSample, evaluate_sample
from corpus.quality_metrics import cramers_v, flatten
from corpus.realism import NameStats, realism_metrics
from corpus.record_files import field_value, leaf_text, read_records
from corpus.run_folder import PERSONAS, RunFolder
from corpus.sampling_metrics import count_parquet, stratum_variables
from dedup.embedders import create_embedder
from dedup.metrics import personahub_duplicate_rates
from foundation.atomic_files import atomic_path, write_bytes_atomically
from schemas.config import EmbedderConfig, RunConfig, load_run_config
from schemas.errors import UserInputError
from taxonomy.loader import load_taxonomy
from taxonomy.model import Taxonomy
from taxonomy.names import COHORT_YEARS, NAMES_DIR, REFERENCE_YEAR
from taxonomy.presets import load_preset
from taxonomy.sample_tally import metrics_scope

# The shared reference sample beside a checkout; an installed populace is given a folder
# (--references-dir or $POPULACE_REFERENCE_DIR) or single files (--reference).
CHECKOUT_REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference_corpora"
REFERENCE_DIR_ENV = "POPULACE_REFERENCE_DIR"
# Bookkeeping fields of the reference files, not persona attributes.
METADATA_FIELDS = {"Generated At", "Profile Index", "character_id", "type", "country_code"}


@dataclass(frozen=True)
class Reference:
    name: str
    path: Path
    text_field: str  # the persona's main paragraph; a nested object counts as the text of its values


def reference_folder(folder: Path | None = None) -> Path:
    env = os.environ.get(REFERENCE_DIR_ENV)
    return folder or (Path(env) if env else CHECKOUT_REFERENCE_DIR)


def default_references(folder: Path | None = None) -> list[Reference]:
    """The known reference corpora found in `folder`, each with the field that holds its persona text."""
    folder = reference_folder(folder)
    fields = {
        "personahub": "record.input persona",
        "deeppersona": "record.Summary",
        "opencharacter": "record.General Experience",
        "tinytroupe": "record.persona",
    }
    return [
        Reference(name, folder / f"{name}.jsonl", field)
        for name, field in fields.items()
        if (folder / f"{name}.jsonl").is_file()
    ]


def choose_references(paths: list[Path], text_fields: list[str], folder: Path | None) -> list[Reference]:
    """The references a command names (each file with its text field), else the known ones in `folder`."""
    if len(text_fields) != len(paths):
        raise UserInputError(
            "--text-field",
            "--text-field",
            f"{len(paths)} references but {len(text_fields)} text fields",
            "give one --text-field after each --reference",
        )
    named = [Reference(path.stem, path, field) for path, field in zip(paths, text_fields, strict=True)]
    return named or default_references(folder)


def our_sample(run_dir: Path, taxonomy: Taxonomy) -> CorpusSample:
    rows = query_run(run_dir, "SELECT name, narrative, attributes FROM personas ORDER BY persona_id").to_pylist()
    enums = {a.id: set(a.values) for a in taxonomy.attributes().values() if a.kind in ("categorical", "ordinal")}
    records = [{"name": r["name"], "narrative": r["narrative"], **dict(r["attributes"])} for r in rows]
    return CorpusSample(
        f"populace:{run_dir.name}", [r["narrative"] for r in rows], records, required=("name", "narrative"), enums=enums
    )


def reference_sample(reference: Reference) -> CorpusSample:
    records = read_records(reference.path)
    texts, flattened = [], []
    for number, record in enumerate(records, start=1):
        text = field_value(record, reference.text_field, f"{reference.path}:{number}")
        texts.append(text if isinstance(text, str) else leaf_text(text))
        body = record.get("record", record) if isinstance(record, dict) else record
        flattened.append({k: v for k, v in flatten(body).items() if k.split(".")[0] not in METADATA_FIELDS})
    return CorpusSample(reference.name, texts, flattened)


def load_name_stats() -> NameStats:
    """From the shipped SSA table: each first name's female share of births and the names of each sex x cohort."""
    births = pq.read_table(NAMES_DIR / "first_names.parquet").to_pandas()
    by_sex = births.pivot_table(index="name", columns="sex", values="births", aggfunc="sum", fill_value=0)
    female_share = (by_sex["female"] / by_sex.sum(axis=1)).to_dict()
    cohort_names = {
        (sex, int(cohort)): frozenset(group["name"]) for (sex, cohort), group in births.groupby(["sex", "cohort"])
    }
    cohorts = sorted({cohort for _, cohort in cohort_names})
    return NameStats(female_share, cohort_names, REFERENCE_YEAR, COHORT_YEARS, (cohorts[0], cohorts[-1]))


def plan_fit(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy) -> dict[str, Any]:
    """Quota deviation against the plan and, for presets, TVD and Cramér's V error per census table."""
    manifest = run.read_manifest()
    sampling = manifest.get("sampling") or {}
    out: dict[str, Any] = {
        "joint": sampling.get("joint", {}),
        "marginals": sampling.get("marginals", {}),
        "strata": manifest.get("strata", {}),
        "rule_violations": manifest.get("rule_violations", []),
        "leaf_coverage": sampling.get("leaf_coverage"),
        "leaf_entropy": sampling.get("leaf_entropy"),
        "root_share": sampling.get("root_share", {}),
    }
    if not cfg.quotas.preset or not sampling:
        return out
    scope = metrics_scope(taxonomy, load_preset(cfg.quotas.preset, taxonomy))
    counts = count_parquet(run.root / PERSONAS, stratum_variables([]), scope)
    out["preset_fit"] = {}
    for attributes, shares, citation in scope.preset_tables:
        name = " x ".join(attributes)
        fit = {"tvd": sampling.get("preset_fit", {}).get(name, {}).get("tvd"), "citation": citation}
        if len(attributes) == 2:
            target, produced = cramers_v(shares), cramers_v(dict(counts.tables.get(name, {})))
            fit.update(
                {"cramers_v_target": target, "cramers_v_produced": produced, "cramers_v_error": abs(produced - target)}
            )
        out["preset_fit"][name] = fit
    return out


def evaluate_run(
    run_dir: Path, references: list[Reference], embedder_cfg: EmbedderConfig | None = None, seed: int = 0
) -> dict[str, Any]:
    """Metrics for the run and each reference; written to RUN_DIR/evaluation/ (JSON and a plot)."""
    run = RunFolder.existing(run_dir)
    cfg = load_run_config(run.config)
    taxonomy = load_taxonomy(cfg.taxonomy)
    embedder = create_embedder(embedder_cfg or cfg.dedup.embedder)  # the vectors the run's own dedup used
    samples = [our_sample(run_dir, taxonomy), *(reference_sample(r) for r in references)]
    names = load_name_stats()
    corpora = {
        s.name: {
            **evaluate_sample(s, embedder.embed, personahub_duplicate_rates(s.texts, embedder), seed),
            **realism_metrics(s.texts, s.records, names),
        }
        for s in samples
    }
    result = {
        "run": run_dir.name,
        "embedder": embedder.name,
        "seed": seed,
        "corpora": corpora,
        "references": [{"name": r.name, "path": str(r.path), "text_field": r.text_field} for r in references],
        "ours": plan_fit(run, cfg, taxonomy),
    }
    folder = run.evaluation
    write_bytes_atomically(
        orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY), folder / "evaluation.json"
    )
    write_comparison_plot(corpora, folder / "comparison.png")
    return result


PLOTTED = (
    "distinct_2",
    "char_distinct_3_per_record",
    "self_bleu_2",
    "template_flag_rate",
    "nearest_neighbour_distance",
    "mean_pairwise_distance",
    "hard_error_rate",
    "warning_rate",
    "third_person_share",
    "markup_or_meta_share",
    "states_age_share",
    "states_occupation_share",
    "unique_full_names_per_1000",
    "name_sex_agreement",
    "name_cohort_plausibility",
)


def write_comparison_plot(corpora: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(corpora)
    fig, axes = plt.subplots(4, 4, figsize=(14, 11))
    for ax, metric in zip(axes.flat, PLOTTED, strict=False):
        values = [corpora[name][metric] for name in names]
        ax.bar(
            range(len(names)),
            [float("nan") if v is None else v for v in values],
            color=["#c0392b"] + ["#7f8c8d"] * (len(names) - 1),
        )
        for x, value in enumerate(values):
            if value is None:  # the corpus's fields do not allow this rate
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7)
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_xticks(range(len(names)), [n.split(":")[0] for n in names], rotation=30, fontsize=8)
    for ax in axes.flat[len(PLOTTED) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
