"""A real model's tokenizer, through the ``tokenizers`` library, with its chat template.

Loaded from a ``tokenizer.json`` file, a model directory (``tokenizer.json`` and, for the chat
template and special tokens, ``tokenizer_config.json``), or a model id found in the local
HuggingFace cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``);
an id not in the cache is fetched from the hub the way ``tokenizers`` does, which fails clearly
on a machine without access. Chat templates are rendered with Jinja2 as transformers renders
them: a sandbox, ``trim_blocks``/``lstrip_blocks``, ``tojson``, ``raise_exception``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer as RustTokenizer

from llmsim.engine.tokenizer import LONG_TEXT
from llmsim.errors import StartupError

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The template used when a tokenizer brings none (ChatML)."""


def _raise(message: str) -> NoReturn:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


class HFTokenizer:
    """A ``tokenizers`` tokenizer and a chat template, behind llmsim's ``Tokenizer`` protocol."""

    def __init__(
        self,
        tokenizer: RustTokenizer,
        chat_template: str | None = None,
        special_tokens: Mapping[str, str] | None = None,
    ):
        self._tokenizer = tokenizer
        self._template = _environment().from_string(chat_template or CHATML)
        self._special = dict(special_tokens or {})

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The token ids of ``text``."""
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (special tokens included)."""
        text: str = self._tokenizer.decode(list(ids), skip_special_tokens=False)
        return text

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """The text of each id on its own."""
        return [self._tokenizer.decode([token_id], skip_special_tokens=False) for token_id in ids]

    def split(self, text: str) -> list[str]:
        """The texts of the tokens of ``text``."""
        return self.token_texts(self.encode(text))

    def count(self, text: str) -> int:
        """The number of tokens of ``text``."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    async def encode_async(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """``encode``; long texts in a worker thread (``encode_batch`` releases the GIL,
        ``encode`` does not)."""
        if len(text) <= LONG_TEXT:
            return self.encode(text, add_special_tokens)
        batch = await asyncio.to_thread(
            self._tokenizer.encode_batch, [text], add_special_tokens=add_special_tokens
        )
        ids: list[int] = batch[0].ids
        return ids

    async def count_async(self, text: str, add_special_tokens: bool = False) -> int:
        """The number of tokens, counted as ``encode_async`` encodes."""
        return len(await self.encode_async(text, add_special_tokens))

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The conversation through the chat template, with the generation prompt."""
        return self._template.render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=True,
            **self._special,
        )


def load_hf_tokenizer(path: str | None = None, model_id: str | None = None) -> HFTokenizer:
    """A tokenizer from a file or directory, or from a model id (local cache, then the hub)."""
    if path is not None:
        return _from_path(Path(path))
    assert model_id is not None
    cached = cached_model_dir(model_id)
    if cached is not None:
        return _from_path(cached)
    try:
        tokenizer = RustTokenizer.from_pretrained(model_id)
    except Exception as exc:
        raise StartupError(
            f"tokenizer for {model_id!r}: not in the local HuggingFace cache ({hub_cache()}) "
            f"and not downloadable: {exc}"
        ) from None
    return HFTokenizer(tokenizer)


def hub_cache() -> Path:
    """Where the HuggingFace hub cache is on this machine."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home) / "hub"


def cached_model_dir(model_id: str) -> Path | None:
    """The newest cached snapshot of ``model_id`` that has a ``tokenizer.json``."""
    snapshots = hub_cache() / f"models--{model_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    found = [d for d in snapshots.iterdir() if (d / "tokenizer.json").is_file()]
    return max(found, key=lambda d: d.stat().st_mtime) if found else None


def _from_path(path: Path) -> HFTokenizer:
    directory = path.parent if path.is_file() else path
    file = path if path.is_file() else path / "tokenizer.json"
    if not file.is_file():
        raise StartupError(f"tokenizer: no tokenizer.json at {path}")
    try:
        tokenizer = RustTokenizer.from_file(str(file))
    except Exception as exc:
        raise StartupError(f"tokenizer: cannot read {file}: {exc}") from None
    config_file = directory / "tokenizer_config.json"
    template: str | None = None
    special: dict[str, str] = {}
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StartupError(f"tokenizer: cannot read {config_file}: {exc}") from None
        template = _template_of(config)
        for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
            value = config.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                special[key] = value
    return HFTokenizer(tokenizer, template, special)


def _template_of(config: Mapping[str, Any]) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: use "default"
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) else None
