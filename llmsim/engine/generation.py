"""What a request answers: its tokens and its finish reason (GEN-1, GEN-2, GEN-5).

``random`` mode answers built-in text of a length drawn by upstream's rules, or, with a dataset,
the dataset's reply to the prompt (DS-3); ``echo`` mode answers the endpoint's prompt text, not
cut at ``max_tokens``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace

from llmsim.datasets.store import DatasetUnreadable, SqliteDataset
from llmsim.engine.text import TextSource, response_length
from llmsim.engine.tokenizer import Tokenizer
from llmsim.engine.tools import SynthesizedCall
from llmsim.errors import BadRequest
from llmsim.scenario.sections import ReasoningSettings

log = logging.getLogger("llmsim")

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_REMOTE_DECODE = "remote_decode"
FINISH_CACHE_THRESHOLD = "cache_threshold"
FINISH_TOOL_CALLS = "tool_calls"
TOOL_CALL_OVERHEAD = 3
"""Completion tokens a tool call costs besides its arguments' (TOOL-4)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request's prompt as the engine sees it."""

    tokens: int
    """Prompt tokens as counted for usage and the context window."""
    text: str
    """The prompt as tokenized (the rendered conversation, the prompt, or its ids)."""
    echo_text: str
    """What echo mode answers (the last message's text, or the prompt)."""
    echo_tokens: tuple[str, ...] | None = None
    """Echo mode's tokens when they are not the split of ``echo_text`` (token-id prompts)."""
    token_ids: tuple[int, ...] | None = None
    """The prompt's token ids when the request gave them (else ``text`` is tokenized)."""


@dataclass(frozen=True, slots=True)
class Generation:
    """A request's answer: token texts in order (one per streamed chunk) and why it stopped."""

    tokens: list[str]
    finish_reason: str
    tool_calls: tuple[SynthesizedCall, ...] = ()
    completion_tokens: int | None = None
    """The usage count when it is not the number of chunks (tool calls)."""
    token_ids: tuple[int, ...] | None = None
    """The tokens' ids when the answer repeats given ids (echo of a token-id prompt)."""
    reasoning: int = 0
    """How many of the first tokens are reasoning, before the answer proper."""
    image: str | None = None
    """The URL of an image the answer carries after its text (omni)."""

    @property
    def count(self) -> int:
        """Completion tokens, as usage and metrics report them."""
        return self.completion_tokens if self.completion_tokens is not None else len(self.tokens)


def check_context_window(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> None:
    """Upstream's context-window check (ERR-3): prompt + requested output must fit."""
    completion = max_tokens if max_tokens is not None else 1
    if prompt_tokens + completion > max_model_len:
        raise BadRequest(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_tokens + completion} tokens ({prompt_tokens} in the messages, "
            f"{completion} in the completion). Please reduce the length of the messages or "
            "completion",
            param="messages",
        )


class Generator:
    """Produces answers: built-in text, echoed prompts, or a given text."""

    def __init__(
        self, tokenizer: Tokenizer, max_model_len: int, dataset: SqliteDataset | None = None
    ):
        self._tokenizer = tokenizer
        self._text = TextSource(tokenizer)
        self._max_model_len = max_model_len
        self._dataset = dataset
        self._dataset_failures = 0
        self.has_dataset = dataset is not None

    def generate(
        self,
        rng: random.Random,
        prompt: Prompt,
        max_tokens: int | None,
        ignore_eos: bool,
        min_tokens: int = 0,
        mode: str = "random",
    ) -> Generation:
        """The answer to ``prompt`` in response ``mode`` under the request's ``max_tokens``,
        ``ignore_eos`` and ``min_tokens`` (vLLM's floor on the length before an end of
        sequence may come)."""
        if mode == "echo":
            ids = None
            if prompt.echo_tokens is not None:
                tokens = list(prompt.echo_tokens)
                ids = prompt.token_ids
            else:
                tokens = self._tokenizer.split(prompt.echo_text)
            reached = max_tokens is not None and len(tokens) >= max_tokens
            return Generation(tokens, FINISH_LENGTH if reached else FINISH_STOP, token_ids=ids)
        room = self._max_model_len - prompt.tokens
        limit = max_tokens if max_tokens is not None else room
        if self._dataset is not None and prompt.token_ids is not None:
            try:
                answer = self._dataset.answer(prompt.token_ids, limit, ignore_eos, rng)
            except DatasetUnreadable as error:
                self._dataset_failures += 1
                if self._dataset_failures & (self._dataset_failures - 1) == 0:  # 1, 2, 4, ...
                    log.warning(
                        "%s; answering with built-in text (%d time(s) so far)",
                        error,
                        self._dataset_failures,
                    )
            else:
                return Generation(answer.tokens, answer.finish_reason)
        length = max(response_length(rng, max_tokens, room, ignore_eos), min(min_tokens, limit))
        finish = FINISH_LENGTH if length == limit else FINISH_STOP
        return Generation(self._text.tokens(rng, length), finish)

    def given(self, text: str, max_tokens: int | None) -> Generation:
        """A given text (a rule's reply) as an answer, cut at ``max_tokens``."""
        tokens = self._tokenizer.split(text)
        if max_tokens is not None and len(tokens) > max_tokens:
            return Generation(tokens[:max_tokens], FINISH_LENGTH)
        return Generation(tokens, FINISH_STOP)

    def calls(self, calls: list[SynthesizedCall]) -> Generation:
        """An answer made of tool calls: per call one chunk opening it, then one per token of
        its arguments; usage counts 3 + argument tokens per call (TOOL-4)."""
        tokens: list[str] = []
        usage = 0
        for call in calls:
            arguments = self._tokenizer.split(call.arguments)
            tokens.append("")
            tokens.extend(arguments)
            usage += TOOL_CALL_OVERHEAD + len(arguments)
        return Generation(tokens, FINISH_TOOL_CALLS, tuple(calls), usage)

    def think(
        self,
        rng: random.Random,
        generation: Generation,
        settings: ReasoningSettings,
        max_tokens: int | None,
    ) -> Generation:
        """``generation`` preceded by reasoning tokens, with ``settings.probability``. Reasoning
        counts against ``max_tokens`` as a thinking model's does: a long one leaves less room
        for the answer (finish ``length`` when it is cut), or none at all."""
        if rng.random() * 100 >= settings.probability:
            return generation
        count = rng.randint(settings.min_tokens, settings.max_tokens)
        if max_tokens is not None and count >= max_tokens:
            return Generation(
                self._text.tokens(rng, max_tokens), FINISH_LENGTH, reasoning=max_tokens
            )
        tokens = generation.tokens
        finish = generation.finish_reason
        if max_tokens is not None and count + len(tokens) > max_tokens:
            tokens, finish = tokens[: max_tokens - count], FINISH_LENGTH
        reasoning = self._text.tokens(rng, count)
        return replace(generation, tokens=reasoning + tokens, finish_reason=finish, reasoning=count)

    def lorem(self, rng: random.Random, count: int) -> str:
        """``count`` tokens of built-in text, for templates."""
        return "".join(self._text.tokens(rng, max(0, min(count, self._max_model_len))))
