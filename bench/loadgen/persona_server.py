"""A load generator for benchmarks: an OpenAI-compatible chat endpoint with no model behind it.

It answers populace's proposal prompts with a fact-consistent, varied continuation built from the
prompt's own facts (hobby, pets, music, diet, ...) and word banks seeded by the request's seed, so
the pipeline's validation, dedup and writing see realistic work while the "LLM" costs nothing, or
a known amount: with --tokens-per-s it emulates a server of fixed capacity (--slots requests
decode at once, each at tokens-per-s / slots), like a GPU server whose batch is full.

This is a benchmarking tool. It never stands in for a model where a test claims to exercise one.

    python bench/loadgen/persona_server.py --port 8811 [--tokens-per-s 6000 --slots 64] [--flawed 0.1]

GET /stats gives requests, completion tokens and busy slot-seconds (POST /stats/reset zeroes them),
from which a benchmark computes the backend's busy share.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time

import orjson
import uvicorn

PRONOUNS = {"he": ("He", "his", "him"), "she": ("She", "her", "her"), "they": ("They", "their", "them")}
FACT_LINE = re.compile(r"^- ([^:\n]+): (.+)$", re.MULTILINE)
SUBJECT = re.compile(r"call the person \S+ or (he|she|they),")
# A verb written "[singular|plural]": "they" takes the second form ("They live", "he lives").
AGREEING_VERB = re.compile(r"\[([^|\]]+)\|([^\]]+)\]")

PLACES = [
    "the corner café",
    "the public library",
    "a community garden",
    "the farmers market",
    "a small park",
    "the neighborhood gym",
    "a friend's porch",
    "the riverside trail",
    "a quiet diner",
    "the hardware store",
    "the local pool",
    "a church basement",
    "the bus stop bench",
    "a bookshop",
    "the laundromat",
    "a food truck lot",
    "the town square",
    "the rec center",
    "a bowling alley",
    "the dog park",
]
TIMES = [
    "before sunrise",
    "after dinner",
    "on weekend mornings",
    "most evenings",
    "during lunch breaks",
    "on rainy afternoons",
    "every Sunday",
    "late at night",
    "on slow Tuesdays",
    "between errands",
    "on long weekends",
    "when the house is quiet",
    "at first light",
    "on payday",
    "after the school run",
]
THINGS = [
    "a battered notebook",
    "a thermos of strong coffee",
    "an old radio",
    "a folding chair",
    "a list of chores",
    "a stack of coupons",
    "a borrowed cookbook",
    "a pair of worn boots",
    "a jar of homemade pickles",
    "a crossword book",
    "a secondhand bicycle",
    "a box of family photos",
    "a pocket calendar",
    "a tin of cookies",
    "a set of garden tools",
    "a spare umbrella",
    "a playlist of old favorites",
]
FEELINGS = [
    "steady routines",
    "small kindnesses",
    "honest conversations",
    "quiet mornings",
    "paying bills on time",
    "keeping promises",
    "a full fridge",
    "good neighbors",
    "learning something new",
    "a tidy kitchen",
    "long phone calls with family",
    "fresh air",
    "saving a little each month",
    "laughing with friends",
    "being useful",
    "a well-kept home",
    "fair treatment at work",
    "time outdoors",
]
# Openings the schema's pattern allows ("<Pronoun> <verb> ..."), each a whole clause.
OPENINGS = [
    "{S} [starts|start] the day {time} at {place} with {thing}.",
    "{S} [spends|spend] time at {place} {time}, usually with {thing}.",
    "{S} [loves|love] quiet hours at {place} {time}, with {thing} close by.",
    "{S} [enjoys|enjoy] {place} {time} and never [goes|go] without {thing}.",
    "{S} [keeps|keep] {thing} handy and [heads|head] to {place} {time}.",
    "{S} [likes|like] to stop by {place} {time}.",
    "{S} often [drops|drop] in at {place} {time} with {thing}.",
    "{S} usually [winds|wind] down at {place} {time}.",
]

SENTENCES = [
    "Friends know {o} for {hobby}, which fills {p} {time}.",
    "{P} taste in music runs to {music}, usually playing while {s} [tidies|tidy] up {time}.",
    "At home there is {pets}, and {s} [plans|plan] the week around {feeling}.",
    "{S2} [cares|care] most about {value}, and {s} [talks|talk] about it over {thing}.",
    "Meals follow {diet}, cooked simply and shared {time}.",
    "Being {sleep_phrase}, {s} [gets|get] the most done {time} near {place}.",
    "{S2} [gets|get] news from {news} and [argues|argue] about it at {place}.",
    "Getting around means {commute}, with {thing} always close at hand.",
    "Over the next few years {s} [is|are] aiming for {goal}, one small step at a time.",
    "{S2} [keeps|keep] {thing} by the door and [heads|head] to {place} {time}.",
    "What keeps {o} going is {feeling}, more than anything money can buy.",
]
FIRST_PERSON = "I really think my weekends matter most to me."


def with_article(phrase: str) -> str:
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def fact_map(prompt: str) -> dict[str, str]:
    return {label.strip().lower(): value.strip() for label, value in FACT_LINE.findall(prompt)}


def continuation(prompt: str, seed: int, flawed: bool) -> str:
    """2-3 sentences that agree with the prompt's facts, opening with the pronoun the schema requires."""
    rng = random.Random(seed)
    subject = (SUBJECT.search(prompt) or [None, "they"])[1]
    big_s, possessive, objective = PRONOUNS[subject]
    facts = fact_map(prompt)
    fill = {
        "S": big_s,
        "S2": big_s,
        "s": subject,
        "P": possessive.capitalize(),
        "p": possessive,
        "o": objective,
        "place": rng.choice(PLACES),
        "time": rng.choice(TIMES),
        "thing": rng.choice(THINGS),
        "feeling": rng.choice(FEELINGS),
        "hobby": facts.get("main hobby", "gardening"),
        "music": facts.get("favourite music", "whatever is on"),
        "pets": with_article(facts["pets"]) if facts.get("pets", "no pets") != "no pets" else "no pet to feed",
        "value": facts.get("most important value", "family"),
        "diet": facts.get("diet", "no special rules"),
        "sleep_phrase": with_article(facts.get("sleep rhythm", "early riser")),
        "news": facts.get("main news source", "the radio"),
        "commute": facts.get("usual way of getting around", "walking"),
        "goal": facts.get("main goal for the next few years", "a calmer life"),
    }
    first = rng.choice(OPENINGS)
    rest = rng.sample(SENTENCES, 2)
    form = 2 if subject == "they" else 1
    text = " ".join(AGREEING_VERB.sub(lambda verb: verb[form], s).format(**fill) for s in [first, *rest])
    if flawed:
        text += " " + FIRST_PERSON
    # Fact values can carry characters the schema's pattern refuses (quotes, slashes): drop them.
    return re.sub(r"[<>*#_|`\"\\\n]", "", text)[:440]


class Capacity:
    """A server of fixed throughput: `slots` sequences decode at once, each at tokens_per_s / slots."""

    def __init__(self, tokens_per_s: float, slots: int) -> None:
        self.tokens_per_s = tokens_per_s
        self.slots = slots
        self.free = asyncio.Semaphore(slots) if tokens_per_s else None
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.completion_tokens = 0
        self.busy_slot_seconds = 0.0
        self.since = time.monotonic()

    async def serve(self, tokens: int) -> None:
        self.requests += 1
        self.completion_tokens += tokens
        if not self.free:
            return
        hold = tokens * self.slots / self.tokens_per_s
        async with self.free:
            await asyncio.sleep(hold)
            self.busy_slot_seconds += hold

    def stats(self) -> dict:
        return {
            "requests": self.requests,
            "completion_tokens": self.completion_tokens,
            "busy_slot_seconds": round(self.busy_slot_seconds, 3),
            "slots": self.slots,
            "tokens_per_s": self.tokens_per_s,
            "seconds": round(time.monotonic() - self.since, 3),
        }


def create_app(capacity: Capacity, flawed_share: float):
    async def send_json(send, status: int, body: dict) -> None:
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path.endswith("/stats"):
            if scope["method"] == "POST":
                capacity.reset()
            await send_json(send, 200, capacity.stats())
            return
        if path.endswith("/models"):
            await send_json(send, 200, {"object": "list", "data": [{"id": "persona-loadgen", "object": "model"}]})
            return
        if not path.endswith("/chat/completions"):
            await send_json(send, 404, {"error": f"no route {path}"})
            return
        request = orjson.loads(body)
        prompt = request["messages"][-1]["content"]
        seed = int(request.get("seed") or 0)
        revising = "previous answer was rejected" in prompt
        flawed = not revising and random.Random(seed ^ 0x5EED).random() < flawed_share
        if "Score from 1" in prompt:  # the judge prompt
            content = orjson.dumps({"plausibility": 4, "consistency": 5, "reason": "Fits the facts."}).decode()
        else:
            content = orjson.dumps({"narrative": continuation(prompt, seed, flawed)}).decode()
        tokens = max(1, len(content) // 4)
        await capacity.serve(tokens)
        await send_json(
            send,
            200,
            {
                "id": f"loadgen-{seed}",
                "object": "chat.completion",
                "model": request.get("model", "persona-loadgen"),
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                ],
                "usage": {
                    "prompt_tokens": len(prompt) // 4,
                    "completion_tokens": tokens,
                    "total_tokens": len(prompt) // 4 + tokens,
                },
            },
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8811)
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="0: answer at once (an instant endpoint)")
    parser.add_argument("--slots", type=int, default=64, help="sequences decoded at once (with --tokens-per-s)")
    parser.add_argument(
        "--flawed",
        type=float,
        default=0.0,
        help="share of first-round answers in the first person (the revise round fixes them)",
    )
    args = parser.parse_args()
    capacity = Capacity(args.tokens_per_s, args.slots)
    uvicorn.run(
        create_app(capacity, args.flawed), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
