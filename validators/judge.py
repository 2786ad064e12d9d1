"""Optional LLM-judge rubric: score accepted personas, then apply thresholds as a separate step."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from schemas.config import BackendConfig, JudgeConfig
from schemas.records import JudgeScores
from taxonomy.model import Taxonomy
from workers.backend import GenerationRequest, GenerationResult
from workers.prompts import render_judge_messages


def judge_requests(
    rows: list[dict[str, Any]], taxonomy: Taxonomy, cfg: BackendConfig, seed: int
) -> list[GenerationRequest]:
    """One request per accepted settled row (rows carry attributes, name, narrative, slot)."""
    schema = JudgeScores.model_json_schema()
    return [
        GenerationRequest(
            request_id=row["persona_id"],
            messages=render_judge_messages(dict(row["attributes"]), row["name"], row["narrative"], taxonomy),
            json_schema=schema,
            max_tokens=96,
            temperature=0.0,
            seed=seed + row["slot"],
            repeat_penalty=cfg.repeat_penalty,
        )
        for row in rows
    ]


def parse_judgement(result: GenerationResult) -> dict[str, Any]:
    """Scores as columns; an unreadable answer leaves them NULL and says why."""
    row = {
        "persona_id": result.request_id,
        "plausibility": None,
        "consistency": None,
        "reason": None,
        "raw_output": result.text,
        "error": result.error,
    }
    if result.error:
        return row
    try:
        scores = JudgeScores.model_validate(orjson.loads(result.text))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        return {**row, "error": f"unreadable judgement ({exc.__class__.__name__})"}
    return {**row, "plausibility": scores.plausibility, "consistency": scores.consistency, "reason": scores.reason}


def apply_thresholds(
    settled: list[dict[str, Any]], judgements: dict[str, dict[str, Any]], cfg: JudgeConfig
) -> list[dict[str, Any]]:
    """Copy the scores onto the settled rows and reject those below a threshold (or unscored)."""
    out = []
    for row in settled:
        judged = judgements.get(row["persona_id"])
        if not row["accepted"] or judged is None:
            out.append(row)
            continue
        row = {**row, "judge_plausibility": judged["plausibility"], "judge_consistency": judged["consistency"]}
        if judged["plausibility"] is None:
            reason, detail = "judge:unscored", judged["error"]
        else:
            below = [
                (name, judged[name], floor)
                for name, floor in (("plausibility", cfg.min_plausibility), ("consistency", cfg.min_consistency))
                if judged[name] < floor
            ]
            if not below:
                out.append(row)
                continue
            name, score, floor = below[0]
            reason, detail = f"judge:{name}", f"{score} < {floor}: {judged['reason']}"
        out.append({**row, "accepted": False, "reason": reason, "detail": detail, "name": None, "narrative": None})
    return out
