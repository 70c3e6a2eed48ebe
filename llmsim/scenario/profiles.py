"""Engine step-time profiles: measured coefficients of the batched engine for a model on a GPU.

A profile is one YAML file: which model, GPU and tensor-parallel size the numbers were measured
on, where they come from (``source``), the step-time and request-overhead coefficients, and
optionally the engine settings they were measured with. The shipped profiles live in
``llmsim/profiles/`` (package data, one file per profile, named after the profile); a scenario
names one (``engine.profile: llama-3.1-8b-h100-tp1``) or gives the path of its own file
(relative paths count from the working directory, like every other path in a scenario). This
module only reads and validates profiles; the compiler turns them into the plan's step model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from llmsim.scenario.base import Section
from llmsim.scenario.failures import Percentage
from llmsim.scenario.units import Duration

PROFILE_SUFFIXES = (".yaml", ".yml")
MAX_JITTER_PERCENT = 30.0
"""Step-time jitter is a relative std-dev; above 30% a 3-sigma draw would approach zero."""


def check_jitter(value: float | None) -> float | None:
    """A step-time jitter of at most 30%."""
    if value is not None and value > MAX_JITTER_PERCENT:
        raise ValueError(f"must be at most {MAX_JITTER_PERCENT:g}%")
    return value


class ProfileStepTime(Section):
    """A profile's step duration: ``base + per-prefill-token x prompt tokens computed in the
    step + per-decode-token x decoding sequences + per-context-token x context tokens they
    attend to``, jittered by ``jitter`` (a relative std-dev)."""

    base: Duration = Field(description="Fixed time of every step (BLIS beta0).")
    per_prefill_token: Duration = Field(
        description="Per prompt token computed in the step (BLIS beta1)."
    )
    per_decode_token: Duration = Field(description="Per decoding sequence (BLIS beta2).")
    per_context_token: Duration = Field(
        default=0.0, description="Per context token the decoding sequences attend to."
    )
    jitter: Percentage = Field(default=0.0, description="Relative std-dev of a step, percent.")

    _jitter = field_validator("jitter")(check_jitter)


class ProfileRequestOverhead(Section):
    """A profile's per-request time outside the steps."""

    base: Duration = Field(default=0.0, description="Before queueing (BLIS alpha0).")
    per_input_token: Duration = Field(
        default=0.0, description="Before queueing, per prompt token (BLIS alpha1)."
    )
    per_output_token: Duration = Field(
        default=0.0, description="After the last step, per output token (BLIS alpha2)."
    )


class ProfileEngine(Section):
    """The engine settings the coefficients were measured with."""

    max_num_batched_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Applied when the scenario does not set engine.max-num-batched-tokens.",
    )
    max_num_seqs: int | None = Field(
        default=None, ge=1, description="Informational: shown by llmsim plan, never applied."
    )


class Profile(Section):
    """One profile file."""

    name: str = Field(min_length=1, description="The profile's name (its file's stem).")
    model: str = Field(min_length=1, description="The model measured (HuggingFace id).")
    gpu: str = Field(min_length=1, description="The GPU measured on.")
    tensor_parallel_size: int = Field(ge=1, description="GPUs per replica.")
    vllm_version: str | None = Field(default=None, description="The vLLM version measured.")
    source: str = Field(min_length=1, description="Where the numbers come from.")
    step_time: ProfileStepTime
    request_overhead: ProfileRequestOverhead = ProfileRequestOverhead()
    engine: ProfileEngine = ProfileEngine()

    def summary(self) -> str:
        """``model on GPU, TP n, vLLM v`` in one line."""
        text = f"{self.model} on {self.gpu}, TP {self.tensor_parallel_size}"
        return text + (f", vLLM {self.vllm_version}" if self.vllm_version else "")


class ProfileError(ValueError):
    """A profile reference that does not resolve to a valid profile; the message says why."""


@dataclass(frozen=True, slots=True)
class LoadedProfile:
    """A valid profile and where it was read from (a shipped name, or a file path)."""

    profile: Profile
    origin: str


def _shipped_dir() -> Any:
    return resources.files("llmsim") / "profiles"


@cache
def shipped_profile_names() -> tuple[str, ...]:
    """The names of the profiles shipped inside the package, sorted."""
    folder = _shipped_dir()
    if not folder.is_dir():
        return ()
    return tuple(
        sorted(
            entry.name.rsplit(".", 1)[0]
            for entry in folder.iterdir()
            if entry.name.endswith(PROFILE_SUFFIXES)
        )
    )


@cache
def shipped_profile(name: str) -> Profile:
    """A shipped profile by name (``ProfileError`` when there is none)."""
    if name not in shipped_profile_names():
        raise ProfileError(_unknown_name_message(name))
    folder = _shipped_dir()
    for suffix in PROFILE_SUFFIXES:
        entry = folder / f"{name}{suffix}"
        if entry.is_file():
            return _parse(entry.read_text(encoding="utf-8"), f"shipped profile '{name}'")
    raise ProfileError(_unknown_name_message(name))  # pragma: no cover - listed, then gone


def looks_like_path(reference: str) -> bool:
    """Whether ``engine.profile`` names a file rather than a shipped profile."""
    return "/" in reference or "\\" in reference or reference.endswith(PROFILE_SUFFIXES)


def load_profile(reference: str) -> LoadedProfile:
    """The profile ``reference`` names: a shipped profile's name, or a profile file's path
    (relative to the working directory). Raises ``ProfileError`` with a message for users."""
    if reference in shipped_profile_names():
        return LoadedProfile(shipped_profile(reference), reference)
    if not looks_like_path(reference):
        raise ProfileError(_unknown_name_message(reference))
    path = Path(reference).expanduser()
    if not path.is_file():
        state = "is not a file" if path.exists() else "does not exist"
        raise ProfileError(f"profile file '{reference}' {state}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile file '{reference}': {exc}") from None
    return LoadedProfile(_parse(text, f"profile file '{reference}'"), reference)


def _unknown_name_message(name: str) -> str:
    names = shipped_profile_names()
    available = ", ".join(names) if names else "none"
    return (
        f"unknown profile '{name}'; available: {available}"
        " (or give the path of a profile file, e.g. ./my-profile.yaml)"
    )


def _parse(text: str, what: str) -> Profile:
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ProfileError(f"{what} is not valid YAML: {detail}") from None
    if not isinstance(data, Mapping):
        raise ProfileError(f"{what} must be a mapping of profile keys")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ProfileError(f"{what} is not a valid profile: {problems}") from None


def _describe(error: Mapping[str, Any]) -> str:
    path: Sequence[Any] = error["loc"]
    key = ".".join(str(part) for part in path) or "(top level)"
    if error["type"] == "missing":
        return f"{key}: is required"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    return f"{key}: " + str(error["msg"]).removeprefix("Value error, ")
