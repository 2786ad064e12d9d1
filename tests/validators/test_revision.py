"""A shard round's requests as the prompts task makes them: the same requests the driver used to
build, round 0 for every slot, a revise round (given the previous round's verdicts) only for the
slots with failed error checks."""

import orjson
import pyarrow as pa

from schemas.config import BackendConfig
from taxonomy.loader import load_taxonomy
from tests.helpers.skeletons import NARRATIVE, answer, skeleton, skeleton_table
from validators.engine import validate_batch
from validators.revision import round_request_rows
from validators.rule_pack import load_rule_pack
from workers.backend import GenerationRequest
from workers.prompts import render_proposal_messages
from workers.proposer import build_requests

TAXONOMY = load_taxonomy("seed:core")
BACKEND = BackendConfig(max_tokens=120, temperature=0.3)


def test_round_zero_asks_for_every_slot_as_the_driver_did():
    slots = [skeleton("p-1"), skeleton("p-2", name="Ana Ruiz"), skeleton("p-3", **{"demographics.age": "71"})]
    rows = round_request_rows(skeleton_table(slots), None, TAXONOMY, BACKEND, 7, 0)
    assert rows == [r.model_dump() for r in build_requests(slots, TAXONOMY, BACKEND, 7, 0)]
    assert [r["request_id"] for r in rows] == ["p-1", "p-2", "p-3"]
    # What the model workers validate on arrival: the rows are whole requests, seeds differ per slot.
    assert len({GenerationRequest.model_validate(r).seed for r in rows}) == 3


def test_a_revise_round_asks_only_for_failed_slots_with_what_to_fix():
    slots = [skeleton("p-1"), skeleton("p-2"), skeleton("p-3")]
    wrong_age = answer(NARRATIVE + " At 31 years old she feels young.")
    outcomes, verdicts = validate_batch(
        [(slots[0], wrong_age), (slots[1], answer()), (slots[2], orjson.dumps({"x": 1}).decode())],
        TAXONOMY,
        load_rule_pack(),
        0,
    )
    assert [o.passed for o in outcomes] == [False, True, False]
    rows = round_request_rows(skeleton_table(slots), verdicts, TAXONOMY, BACKEND, 7, 1)  # as the stream sends it
    assert [r["request_id"] for r in rows] == ["p-1", "p-3"]
    feedback = {o.persona_id: o.feedback for o in outcomes if not o.passed}
    for row, slot in zip(rows, [slots[0], slots[2]], strict=True):
        assert row["messages"] == render_proposal_messages(slot, TAXONOMY, feedback[slot.persona_id])
        assert feedback[slot.persona_id][0] in row["messages"][-1]["content"]
    assert rows[0]["seed"] != round_request_rows(skeleton_table(slots[:1]), None, TAXONOMY, BACKEND, 7, 0)[0]["seed"]


def test_a_revise_round_with_only_warnings_or_nothing_failed_asks_for_nothing():
    slots = [skeleton("p-1")]
    _, verdicts = validate_batch([(slots[0], answer())], TAXONOMY, load_rule_pack(), 0)
    assert round_request_rows(skeleton_table(slots), verdicts, TAXONOMY, BACKEND, 7, 1) == []
    warned = verdicts.slice(0, 1).to_pylist()[0] | {"passed": False, "severity": "warning", "message": "style"}
    warnings = pa.Table.from_pylist([warned], schema=verdicts.schema)
    assert round_request_rows(skeleton_table(slots), warnings, TAXONOMY, BACKEND, 7, 1) == []
