"""Proposal requests from skeletons, and passes over them on Ray model workers."""

from __future__ import annotations

import functools
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from schemas.config import BackendConfig
from schemas.errors import UserInputError
from schemas.records import Skeleton, proposal_json_schema
from taxonomy.model import Taxonomy
from taxonomy.opening import pronouns_for
from workers.backend import GenerationRequest, GenerationResult
from workers.engine_pool import Engines
from workers.prompts import render_proposal_messages


def generation_seed(run_seed: int, slot: int, round_no: int) -> int:
    """Per-request sampling seed: reruns of a slot and round decode the same way."""
    return (run_seed * 1_000_003 + slot * 101 + round_no) % (2**31 - 1)


def build_requests(
    skeletons: list[Skeleton],
    taxonomy: Taxonomy,
    cfg: BackendConfig,
    run_seed: int,
    round_no: int,
    feedback: dict[str, list[str]] | None = None,
) -> list[GenerationRequest]:
    """One request per skeleton; in revise rounds with its feedback."""
    feedback = feedback or {}
    return [
        GenerationRequest(
            request_id=s.persona_id,
            messages=render_proposal_messages(s, taxonomy, feedback.get(s.persona_id)),
            json_schema=continuation_schema(s),
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            repeat_penalty=cfg.repeat_penalty,
            seed=generation_seed(run_seed, s.slot, round_no),
        )
        for s in skeletons
    ]


# The continuation opens with the person's pronoun and one of these verbs: a small model then goes on
# with new details instead of restating the opening ("She is an 85-year-old ..."). Each verb with the
# form "they" takes ("They live", not "They lives"); past tenses and adverbs fit every pronoun.
OPENING_VERBS: dict[str, str] = {
    "starts": "start",
    "spends": "spend",
    "works": "work",
    "loves": "love",
    "enjoys": "enjoy",
    "has": "have",
    "lives": "live",
    "keeps": "keep",
    "takes": "take",
    "wakes": "wake",
    "cares": "care",
    "likes": "like",
    "grew": "grew",
    "moved": "moved",
    "runs": "run",
    "volunteers": "volunteer",
    "values": "value",
    "hopes": "hope",
    "begins": "begin",
    "finds": "find",
    "shares": "share",
    "plans": "plan",
    "walks": "walk",
    "cooks": "cook",
    "reads": "read",
    "drives": "drive",
    "saves": "save",
    "misses": "miss",
    "knows": "know",
    "learned": "learned",
    "raised": "raised",
    "retired": "retired",
    "studies": "study",
    "fixes": "fix",
    "tends": "tend",
    "prefers": "prefer",
    "dreams": "dream",
    "still": "still",
    "often": "often",
    "usually": "usually",
    "never": "never",
    "rarely": "rarely",
    "always": "always",
}


def opening_verbs(subject: str) -> list[str]:
    """The words the narrative may open with after `subject` (He, She or They)."""
    return list(OPENING_VERBS.values() if subject == "They" else OPENING_VERBS)


def continuation_schema(skeleton: Skeleton) -> dict[str, Any]:
    """The proposal schema, with the narrative held to start '<Pronoun> <verb> ' and to carry no markup."""
    return _continuation_schema(pronouns_for(skeleton.attributes)[0].capitalize())


@functools.cache
def _continuation_schema(subject: str) -> dict[str, Any]:
    """One schema per pronoun (shared by every request: treat as read-only); pydantic's schema
    generation cost more than rendering the prompt."""
    schema = proposal_json_schema()
    narrative = dict(schema["properties"]["narrative"])
    # No quote, backslash or newline in the class: llama.cpp would let them end the JSON string early.
    narrative["pattern"] = rf"^{subject} ({'|'.join(opening_verbs(subject))}) [^<>*#_|`\"\\\n]*$"
    return {**schema, "properties": {**schema["properties"], "narrative": narrative}}


RAY_ADDRESS_FIX = (
    "start its head with `ray start --head`, pass the head's host:port (or 'auto' on a node of the "
    "cluster), and export the cluster's RAY_AUTH_TOKEN if it uses token authentication"
)


def check_ray_address(address: str | None) -> None:
    """A head that nothing answers on fails at once: ray.init would retry for minutes first."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserInputError("--ray-address", "--ray-address", f"'{address}' is not host:port", RAY_ADDRESS_FIX)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserInputError(
            "--ray-address", "--ray-address", f"nothing answers at {address} ({exc.strerror or exc})", RAY_ADDRESS_FIX
        ) from None


def ensure_ray(address: str | None = None) -> None:
    """Join the given cluster, or start a local Ray sized to this machine (once per process)."""
    import ray

    if ray.is_initialized():
        return
    check_ray_address(address)
    # ray.init replaces the driver's SIGTERM handler with one that exits at once; the
    # application's own handler (stop Ray and Prefect, exit 143) stays in charge.
    in_main_thread = threading.current_thread() is threading.main_thread()
    sigterm_handler = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            ignore_reinit_error=True,
        )
    except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
        raise UserInputError(
            "--ray-address",
            "--ray-address",
            f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0][:300]}",
            RAY_ADDRESS_FIX,
        ) from None
    if in_main_thread and sigterm_handler is not None:
        signal.signal(signal.SIGTERM, sigterm_handler)


def propose_with_ray(
    requests: list[GenerationRequest], cfg: BackendConfig, address: str | None = None, stage: str = "propose"
) -> Iterator[GenerationResult]:
    """One pass on model workers started for it (a build keeps its workers in an Engines for every pass)."""
    if not requests:
        return
    ensure_ray(address)
    with Engines() as engines:
        yield from engines.generate(cfg, requests, stage)
