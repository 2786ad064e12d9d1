"""Find the user sentences that reveal something about the user (self-disclosure), cheaply.

Only these go to the LLM: most user turns are tasks ("write a poem"), and a small model
asked to find attributes in a task invents them. A sentence is revealing when it speaks of
the user in the first person with a verb or noun of identity, circumstance or preference,
and is not merely describing the task at hand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from taxonomy.mining.conversations import Conversation
from taxonomy.mining.scrub import PLACEHOLDER

_SELF_VERBS = (
    "work|worked|live|lived|grew up|study|studied|teach|taught|own|like|love|loved|enjoy|hate|prefer|"
    "play|speak|believe|feel|usually|always|never|often|can't stand|cannot stand|dislike|care about|value|"
    "dream of|spend|moved|retired|raise|volunteer|practice|practise|follow|vote|identify as|struggle with|"
    "suffer from|cook|drive|collect|was born|have been|used to|graduated|majored|run|exercise|meditate"
)
_MY_NOUNS = (
    "wife|husband|partner|boyfriend|girlfriend|kids?|children|sons?|daughters?|mom|mum|mother|dad|father|"
    "parents|family|brothers?|sisters?|grand(?:ma|pa|mother|father|children)|dogs?|cats?|pets?|job|boss|"
    "career|company|employer|colleagues|coworkers|school|university|college|major|degree|hobby|hobbies|"
    "favou?rite|health|doctor|therapist|diet|religion|faith|church|hometown|home town|neighbou?rhood|house|"
    "apartment|flat|salary|income|budget|savings|debt|car|bike|garden|band|team|students|patients|clients|"
    "shift|commute|culture|heritage|native language|background|personality"
)
_CUES = [
    re.compile(r"\bI(?:'m| am| was)\s+(?:a|an)\s+(?!bit\b|little\b|lot\b)[a-z]", re.IGNORECASE),
    re.compile(r"\bI(?:'m| am)\s+\d{1,3}\b(?!\s*(?:%|percent|times|minutes|hours|pages|words))", re.IGNORECASE),
    re.compile(
        r"\bI\s+(?:(?:really|also|just|still|mostly|do|don't|do not|usually|often|always|never)\s+)?"
        rf"(?:{_SELF_VERBS})\b",
        re.IGNORECASE,
    ),
    re.compile(rf"\bmy\s+(?:[a-z]+\s+)?(?:{_MY_NOUNS})\b", re.IGNORECASE),
    re.compile(
        r"\bas an?\s+(?!ai\b|language model\b|assistant\b|example\b|result\b)[a-z]+(?:\s+[a-z]+)?\s*,", re.IGNORECASE
    ),
]
# First person that describes the request, not the person: discounted.
_TASK_TALK = re.compile(
    r"\bI(?:'m| am)\s+(?:going to|trying to|looking for|writing|asking|wondering|not sure|working on|"
    r"getting|using|having trouble)\b|\b(?:write|generate|create|translate|rewrite|summari[sz]e|code)\b",
    re.IGNORECASE,
)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_CODE_LIKE = re.compile(r"[{};=<>]|```|\bdef\b|\bimport\b|\breturn\b")


@dataclass(frozen=True)
class Snippet:
    conversation: str  # the conversation's hashed key
    source: str
    text: str  # already scrubbed
    score: int


def disclosure_score(sentence: str) -> int:
    """How many distinct self-disclosure cues the sentence carries, less one when it talks about the task."""
    hits = sum(1 for cue in _CUES if cue.search(sentence))
    if hits and _TASK_TALK.search(sentence):
        hits -= 1
    return hits


def find_revealing(
    conversations: list[Conversation],
    scrubbed_turns: dict[str, list[str]],
    min_chars: int,
    max_chars: int,
    per_conversation: int,
) -> list[Snippet]:
    """The best-scoring revealing sentences of each conversation, at most `per_conversation` each."""
    found: list[Snippet] = []
    for conversation in conversations:
        candidates: list[tuple[int, int, str]] = []
        for turn in scrubbed_turns[conversation.key]:
            for sentence in SENTENCE_SPLIT.split(turn):
                sentence = sentence.strip()
                if not min_chars <= len(sentence) <= max_chars or _CODE_LIKE.search(sentence):
                    continue
                if len(PLACEHOLDER.sub("", sentence).strip()) < min_chars:
                    continue
                score = disclosure_score(sentence)
                if score > 0:
                    candidates.append((-score, len(candidates), sentence))
        for neg_score, _, sentence in sorted(candidates)[:per_conversation]:
            found.append(Snippet(conversation.key, conversation.source, sentence, -neg_score))
    return found


def sample_snippets(snippets: list[Snippet], limit: int, seed: int) -> list[Snippet]:
    """A deterministic, source-balanced sample: hash order within each source, sources interleaved."""
    if len(snippets) <= limit:
        return snippets
    by_source: dict[str, list[Snippet]] = {}
    for snippet in snippets:
        by_source.setdefault(snippet.source, []).append(snippet)
    queues = [sorted(group, key=lambda s: _rank(seed, s)) for _, group in sorted(by_source.items())]
    picked: list[Snippet] = []
    while len(picked) < limit:
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def _rank(seed: int, snippet: Snippet) -> tuple[int, str]:
    digest = hashlib.sha256(f"{seed}\x1f{snippet.conversation}\x1f{snippet.text}".encode()).hexdigest()
    return (-snippet.score, digest)
