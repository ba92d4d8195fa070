"""The one schema of every file prune-lut shares, checked on load.

Kinds: lookup table (``prune-lut.lut/1``), arch JSON, search result (``prune-lut.search/1``), search
state (``<result>.state.json``), validation/calibration record (``prune-lut.validation/2``), and a
training checkpoint's header and state. The file formats are the ones the code has always written;
these models describe them, and a loader keeps using the plain dict it parsed (validation only).

Why pydantic (v2), not hand checks or jsonschema: its Rust core validates the shipped 5,640-entry
table in a few tens of milliseconds; every error carries its exact location and the value found,
which is what a one-line message needs (``entries.conv-s8-c8x16-k1-st1-g1-relu6.median_ms:
expected a finite number, found nan``); and the same models emit JSON Schema for teams that read
or write these files in other languages (``python -m prune_lut.schemas [KIND]``).

Strict where the code computes with a value: numbers must be numbers (no ``"3"``, no ``true`` for
an int), latencies finite and >= 0 (> 0 where the code divides by them), counts >= 0, sizes within
the ranges a channel space accepts (:data:`SPACE_LIMITS`). Sections that are only displayed
(provenance, build figures, calibration metadata) are typed where they are read and otherwise
free-form; unknown fields are kept (a newer prune-lut may add some), except in arch JSON, which
names its fields exactly.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic_core import from_json
from typing_extensions import NotRequired, TypedDict

from .errors import UserError
from .files import GZIP_MAGIC, MAX_JSON_BYTES, check_depth, gunzip, read_bytes

# ---- limits shared by the options that build a space (cli/options.py) and the files describing one
SPACE_LIMITS = {"resolution": (1, 4096), "num_classes": (1, 100_000), "in_channels": (1, 1024),
                "multiple": (1, 256)}
SCHEMAS = {"prune-lut.lut/1": "a lookup table", "prune-lut.search/1": "a search result",
           "prune-lut.validation/2": "a validation record", "prune-lut.evolution/1": "a search's evolution state",
           "prune-lut.validation/1": "a validation record of prune-lut 0.1",
           "prune-lut.net/1": "an exported network", "prune-lut-checkpoint": "a training checkpoint"}
# a LayerSpec key (latency/spec.py), e.g. conv-s56-c24x144-k1-st1-g1-relu6[-res]
KEY_PATTERN = r"^(conv|add|maxpool|gap|linear)-s\d+-c\d+x\d+-k\d+-st\d+-g\d+-[a-z0-9]+(-res)?$"
CALIBRATION_MODELS = ("none", "scale", "linear", "sum_macs", "per_op", "regressor")  # latency/calibration.py

Finite = Annotated[float, Field(allow_inf_nan=False)]
# Times above MAX_MS (11.6 days in ms, 31 years in s) are damage, not measurements: finite values near
# 1e308 overflow to inf inside the fits (Theil-Sen's spatial median) instead of failing at load.
MAX_MS = 1e9
Ms = Annotated[float, Field(ge=0, le=MAX_MS, allow_inf_nan=False)]        # a latency or spread
PosMs = Annotated[float, Field(gt=0, le=MAX_MS, allow_inf_nan=False)]     # a latency the code divides by
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
Width = Annotated[int, Field(ge=1)]


def _limited(name: str):
    lo, hi = SPACE_LIMITS[name]
    return Annotated[int, Field(ge=lo, le=hi)]


Resolution, NumClasses, InChannels, Multiple = (_limited(n) for n in ("resolution", "num_classes", "in_channels",
                                                                      "multiple"))
Ratio = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class Record(BaseModel):
    """A section of a file: strict types, unknown fields kept."""

    model_config = ConfigDict(strict=True, extra="allow")


# ---- a channel space, as tables, checkpoints and results describe it ----------------------------
# Optional fields below default to None without accepting an explicit null: prune-lut writes every
# field it has, and a null where a value belongs is damage (``x: T = None`` validates given values only).
class SpaceFields(Record):
    family: str
    resolution: Resolution
    num_classes: NumClasses
    in_channels: InChannels = 3
    small_input: bool = False
    grid: Annotated[list[Ratio], Field(min_length=1)] = None
    multiple: Multiple = 1
    rounding: Literal["round", "floor"] = "round"


class SpaceDescription(SpaceFields):
    hash: str | None = None


class Arch(SpaceFields):
    """Arch JSON (``export --arch-out``): the space's options and one width per gene."""

    model_config = ConfigDict(strict=True, extra="forbid")
    resolution: Resolution = 224
    num_classes: NumClasses = 1000
    genes: dict[str, Width]


# ---- lookup table ----------------------------------------------------------------------------------
# Entries and network records are TypedDicts, not models: a table holds thousands, and validating
# them without building an object each halves the load time of the shipped table.
class _Entry(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="allow")  # type: ignore[misc]
    median_ms: Ms
    spread_ms: Ms
    reps: Count
    source: Literal["measured", "predicted"]
    obs: NotRequired[Annotated[list[Ms], Field(min_length=1)]]
    spreads: NotRequired[list[Ms]]
    refs: NotRequired[list[Ms]]


def _aligned(e: dict) -> dict:
    n = len(e.get("obs") or ())
    for name in ("spreads", "refs"):
        v = e.get(name)
        if v is not None and len(v) != n:
            raise ValueError(f"{name} holds {len(v)} values for {n} observations (obs)")
    return e


Entry = Annotated[_Entry, AfterValidator(_aligned)]


class Reference(Record):
    id: str
    keys: list[str]
    median_ms: PosMs
    spread_ms: Ms = 0.0
    reps: Count = 0
    first_ms: PosMs
    last_ms: PosMs


class Network(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="allow")  # type: ignore[misc]
    id: str
    keys: list[str]
    e2e_ms: PosMs
    ref_ms: NotRequired[PosMs | None]
    heldout: NotRequired[bool]
    node_sum_ms: NotRequired[Ms | None]


class Heldout(Record):
    n: Count
    median_abs_rel_err: Ms
    max_abs_rel_err: Ms = None
    within_10pct: Share


class SumToE2E(Record):
    a: Finite
    b: Finite
    n: Count
    median_abs_rel_err: Ms
    heldout: Heldout | None = None


class BuildInfo(Record):
    elapsed_s: Ms = 0.0
    networks_done: Count = 0


class Extra(Record):
    shard: Annotated[str, StringConstraints(pattern=r"^\d+/\d+$")] | None = None
    networks: list[Network] = []
    sum_to_e2e: SumToE2E | None = None
    build: BuildInfo | None = None


class Figures(Record):
    """Error figures (``latency/report.error_figures``) as a frame stores its held-out ones."""

    n: Count | None = None
    mean_abs_pct: Ms | None = None
    median_abs_pct: Ms | None = None
    within_10: Share | None = None


class Frame(Record):
    source: Literal["build", "calibrate"]
    device: str | None = None
    date: str | None = None
    reference_ms: PosMs | None = None
    runs: Count | None = None
    heldout: Figures | None = None


class CalibrationMeta(Record):
    frame: Frame | None = None
    drift: Literal["none", "local"] | None = None
    reference_now_ms: PosMs | None = None


class Calibration(Record):
    model: Literal[CALIBRATION_MODELS]
    coef: dict[str, Finite]
    interval: list[Finite] = Field([0.0, 0.0], min_length=2, max_length=2)
    meta: CalibrationMeta = CalibrationMeta()


class Regressor(Record):
    heldout_median_abs_rel_err: Ms | None = None
    heldout_p90_abs_rel_err: Ms | None = None
    n_predicted: Count | None = None


class TableSpace(Record):
    """A table's space: opaque to ``latency/`` beyond its hash and key count, but the fields of a
    space description, where present, must be valid ones (the pruning side rebuilds the space)."""

    hash: str
    keys: Count = None
    family: str = None
    resolution: Resolution = None
    num_classes: NumClasses = None
    in_channels: InChannels = None
    small_input: bool = None
    grid: Annotated[list[Ratio], Field(min_length=1)] = None
    multiple: Multiple = None
    rounding: Literal["round", "floor"] = None


class Provenance(Record):
    """Where and how a table was measured: displayed (``lut info``), compared (``lut merge``, frames)."""

    host: str | None = None
    cpu: str | None = None
    gpu: str | None = None
    machine: str | None = None
    os: str | None = None
    python: str | None = None
    cores: Count | None = None
    threads: Count | None = None
    precision: str | None = None
    date: str | None = None
    method: str | None = None
    onnxruntime: str | None = None
    torch: str | None = None
    tensorrt: str | None = None
    cuda: str | None = None
    ssh_host: str | None = None
    protocol: dict[str, Any] | None = None
    merged_from: list[dict[str, Any]] = None


class DeviceProfile(Record):
    name: str | None = None
    backend: str | None = None
    threads: Count | None = None
    multiple: Annotated[int, Field(ge=1)] | None = None
    batch: Annotated[int, Field(ge=1)] | None = None
    protocol: dict[str, Finite] | None = None


class Table(Record):
    """A lookup table (``latency/lutfile.py``)."""

    schema_: Literal["prune-lut.lut/1"] = Field(alias="schema")
    device: DeviceProfile
    provenance: Provenance
    space: TableSpace
    entries: dict[Key, Entry]
    reference: Reference | None = None
    calibration: Calibration | None = None
    regressor: Regressor | None = None
    extra: Extra = Extra()


# ---- search result and state ----------------------------------------------------------------------
class Ranked(Record):
    accuracy: Share
    latency_ms: dict[str, Ms]
    macs: Count
    params: Count = 0
    arch: Arch


class TopEntry(Ranked):
    rank: Annotated[int, Field(ge=1)]


class Baseline(Ranked):
    ratio: Ratio


class LatencyBudgetRecord(Record):
    device: str
    latency_ms: PosMs


class Budgets(Record):
    latency: list[LatencyBudgetRecord] = Field(min_length=1)
    macs: Count | None = None


class Evaluated(Record):
    latency_ms: dict[str, Ms]
    accuracy: Share
    generation: Count


class Verified(Record):
    k: Count
    winner_rank: Annotated[int, Field(ge=1)] | None = None


class FitnessSettings(Record):
    """How the search scored archs (export --weights pruningnet recalibrates the same way)."""

    recal_batches: Annotated[int, Field(ge=1, le=10_000)]
    recal_batch_size: Annotated[int, Field(ge=1, le=1 << 20)]


class SearchResult(Record):
    """A search result (``pruning/search/result.py``)."""

    schema_: Literal["prune-lut.search/1"] = Field(alias="schema")
    space: SpaceDescription
    devices: list[str] = Field(min_length=1)
    budgets: Budgets
    seed: int
    top: list[TopEntry] = Field(min_length=1)
    uniform_baseline: Baseline | None = None
    evaluated: list[Evaluated] = []
    pareto: dict[str, list[Ranked]] = {}
    evaluations: Count = 0
    checkpoint: str | None = None
    fitness: FitnessSettings | None = None
    verified: Verified | None = None

    @model_validator(mode="after")
    def _ranks(self):
        ranks = [t.rank for t in self.top]
        if ranks != list(range(1, len(ranks) + 1)):
            raise ValueError(f"top ranks must be 1..{len(ranks)} in order, found {ranks[:6]}")
        if self.verified is not None and self.verified.winner_rank is not None \
                and self.verified.winner_rank > len(self.top):
            raise ValueError(f"verified.winner_rank {self.verified.winner_rank} is not among the "
                             f"{len(self.top)} top archs")
        return self


U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]


class Scored(Record):
    genes: list[Width]
    fitness: Share
    generation: Count


class EvolutionState(Record):
    schema_: Literal["prune-lut.evolution/1"] = Field(alias="schema")
    config: dict[str, Any]
    genes: list[str] = Field(min_length=1)
    generation: Count
    rng: list[Any] = Field(min_length=3, max_length=3)  # random.getstate(): [3, 625 words, gauss]
    rejected: dict[str, Count] = {}
    scored: list[Scored] = []

    @model_validator(mode="after")
    def _consistent(self):
        version, internal, gauss = self.rng
        if version != 3 or not isinstance(internal, list) or len(internal) != 625 \
                or not all(type(w) is int and 0 <= w < 2**32 for w in internal) or internal[-1] > 624 \
                or not (gauss is None or type(gauss) is float):
            raise ValueError("rng is not a state of Python's random generator ([3, 625 words, null])")
        n = len(self.genes)
        bad = next((i for i, s in enumerate(self.scored) if len(s.genes) != n), None)
        if bad is not None:
            raise ValueError(f"scored[{bad}] has {len(self.scored[bad].genes)} genes, the search {n}")
        return self


class StateBaseline(Record):
    ratio: Ratio
    genes: list[Width]
    accuracy: Share


class SearchState(Record):
    """The state beside a search result (``pruning/search/run.py``), rewritten every generation."""

    fingerprint: dict[str, Any]
    evolution: EvolutionState
    baseline: StateBaseline | None = None
    history: list[dict[str, Any]] = []
    elapsed_s: Ms = 0.0

    @model_validator(mode="after")
    def _baseline(self):
        if self.baseline is not None and len(self.baseline.genes) != len(self.evolution.genes):
            raise ValueError(f"baseline has {len(self.baseline.genes)} genes, the search "
                             f"{len(self.evolution.genes)}")
        return self


# ---- validation / calibration record -------------------------------------------------------------
class Sample(Record):
    id: str
    macs: Count
    params: Count = 0
    features: dict[str, Finite]
    table_sum_ms: Ms
    lut_predicted_ms: Ms
    raw_ms: PosMs
    spread_ms: Ms
    ref_ms: PosMs
    measured_ms: PosMs
    attempts: Annotated[int, Field(ge=1)] = 1
    vector: list[Width] | None = None


class Repeat(Record):
    index: Count
    measured_ms: PosMs
    attempts: Annotated[int, Field(ge=1)] = 1


class RecordReference(Record):
    frame_ms: PosMs | None = None
    now_ms: list[PosMs] = Field(min_length=1)


class ValidationRecord(Record):
    """What ``validate`` and ``calibrate`` write (``latency/validate.py``); every figure is recomputed from it."""

    schema_: Literal["prune-lut.validation/2"] = Field(alias="schema")
    date: str
    device: DeviceProfile | None = None
    lut_space: dict[str, Any]
    lut_calibrated: bool
    lut_calibration_source: Literal["calibrate", "build"] | None = None
    frame: Frame | None = None
    previous_frame: Frame | None = None
    seed: int = 0
    drift: Literal["none", "local"] = "none"
    reference: RecordReference
    samples: list[Sample] = Field(min_length=3)
    repeats: list[Repeat] = []
    warnings: list[str] = []
    calibration: Calibration | None = None
    seconds: Ms = 0.0

    @model_validator(mode="after")
    def _consistent(self):
        n = len(self.samples)
        bad = next((r.index for r in self.repeats if r.index >= n), None)
        if bad is not None:
            raise ValueError(f"a repeat measures sample {bad}, but the record has {n} samples")
        if self.calibration is not None and n < 5:
            raise ValueError(f"a calibration needs at least 5 samples (cross-validation), found {n}")
        if self.previous_frame is not None and self.frame is None:
            raise ValueError("previous_frame without frame: a calibration record names the frame it moved to")
        return self


# ---- training checkpoint ----------------------------------------------------------------------
class TrainConfig(Record):
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    seed: int
    weight_decay: Ms
    hidden: Annotated[int, Field(ge=1)] | None = None
    bn: Literal["choice", "shared"] = "choice"  # pruning/pruningnet.py BN_MODES
    momentum: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.9
    label_smoothing: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.1


class Sampler(Record):
    rule: Literal["sandwich", "widest", "alternate", "random"] | None = None
    random_archs: Annotated[int, Field(ge=0, le=16)] | None = None
    draws: Literal["uniform", "level", "narrow"] | None = None  # pruning/train/sampler.py DRAWS
    macs_range: list[Ms] | None = Field(None, min_length=2, max_length=2)
    latency_range: list[Ms] | None = Field(None, min_length=2, max_length=2)
    lut: str | None = None
    distill: bool = False


class CheckpointHeader(Record):
    """The JSON header of a ``train``/``retrain`` checkpoint (``pruning/train/checkpoint.py``)."""

    format: Literal["prune-lut-checkpoint"]
    version: Annotated[int, Field(ge=1)]
    kind: Literal["pruningnet", "plain"]
    space: SpaceDescription
    space_hash: str
    data_spec: str
    data: dict[str, Any] = {}
    config: TrainConfig
    epoch: Count
    history: list[dict[str, Any]]
    sampler: Sampler | None = None
    arch: dict[str, Width] | None = None

    @model_validator(mode="after")
    def _kind(self):
        if self.kind == "pruningnet" and self.config.hidden is None:
            raise ValueError("a pruningnet checkpoint needs config.hidden")
        if self.kind == "plain" and self.arch is None:
            raise ValueError("a plain checkpoint needs its arch")
        if len(self.history) < self.epoch:
            raise ValueError(f"history holds {len(self.history)} epochs, the header says {self.epoch}")
        return self


# ---- loading -------------------------------------------------------------------------------------
KINDS: dict[str, tuple[type[BaseModel], str, str]] = {  # kind -> (model, what it is, how to get a good one)
    "table": (Table, "lookup table", "rebuild it or fetch it again"),
    "arch": (Arch, "arch JSON", "write it with `prune-lut export --arch-out`, or fix that field"),
    "result": (SearchResult, "search result", "give the file `prune-lut search --out` wrote"),
    "state": (SearchState, "search state", "delete it, or pass --force to start the search over"),
    "record": (ValidationRecord, "validation record", "measure again with `prune-lut validate`"),
    "checkpoint": (CheckpointHeader, "checkpoint header", "train it again or fetch it again"),
}
SCHEMA_OF = {"table": "prune-lut.lut/1", "result": "prune-lut.search/1", "record": "prune-lut.validation/2"}


def show(v: Any) -> str:
    """A found value, short: ``nan``, ``'abc'``, ``null``, ``a list of 3 items``, ``an object``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return repr(v) if len(v) <= 48 else repr(v[:45]) + "..."
    if isinstance(v, (list, tuple)):
        return f"a list of {len(v)} items"
    if isinstance(v, dict):
        return "an object" + (f" with keys {', '.join(map(str, list(v)[:3]))}{', ...' if len(v) > 3 else ''}"
                              if v else " with no keys")
    return type(v).__name__


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            part = "schema" if part == "schema_" else str(part)
            out += ("." if out else "") + part
    return out or "(top level)"


EXPECTED = {"dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
            "list_type": "a list", "float_type": "a number", "int_type": "an integer", "string_type": "a string",
            "bool_type": "true or false", "finite_number": "a finite number", "none_required": "null"}
BOUNDS = {"greater_than_equal": ("a number >=", "ge"), "greater_than": ("a number >", "gt"),
          "less_than_equal": ("a number <=", "le"), "less_than": ("a number <", "lt"),
          "too_short": ("at least", "min_length"), "too_long": ("at most", "max_length")}


def _expected(e: dict) -> str:
    t, ctx = e["type"], e.get("ctx") or {}
    if t in EXPECTED:
        return EXPECTED[t]
    if t in BOUNDS:
        words, name = BOUNDS[t]
        v = ctx.get(name)
        if "length" in name:
            return f"{words} {v} item{'' if v == 1 else 's'}"
        return f"{words} {v:g}" if isinstance(v, (int, float)) else f"{words} {v}"
    if t == "literal_error":
        return f"one of {ctx.get('expected')}"
    if t == "string_pattern_mismatch":
        return f"a string matching {ctx.get('pattern')}"
    msg = e["msg"]
    return msg[len("Input should be "):] if msg.startswith("Input should be ") else msg[0].lower() + msg[1:]


def explain(err: ValidationError, source: str, fix: str) -> UserError:
    """One line for a failed validation: the file, the field's dotted path, expected vs found."""
    errors = err.errors(include_url=False)
    e = errors[0]
    loc, found = tuple(e["loc"]), e.get("input")
    where = _path(loc)
    if e["type"] == "missing":
        text = f"{where}: missing (a required field)"
    elif e["type"] == "extra_forbidden":
        text = f"{where}: unknown field"
    elif loc and loc[-1] == "[key]":
        text = f"{where}: key {show(found)} is not a layer key (expected one like conv-s56-c24x144-k1-st1-g1-relu6)"
    elif e["type"] == "value_error":  # a cross-field check of a section (or of the whole file: no location)
        why = e["msg"].removeprefix("Value error, ")
        text = f"{where}: {why}" if loc else why
    else:
        text = f"{where}: expected {_expected(e)}, found {show(found)}"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return UserError(f"{source}: {text}{more}; {fix}")


def check_schema(obj: Any, kind: str, source: str) -> None:
    """Refuse a file of another kind or schema version, naming the schema found."""
    _, what, fix = KINDS[kind]
    want = SCHEMA_OF[kind]
    if not isinstance(obj, dict):
        raise UserError(f"{source}: not a {what}: expected a JSON object, found {show(obj)}; {fix}")
    got = obj.get("schema", obj.get("format"))
    if got == want:
        return
    if got is None:
        raise UserError(f"{source}: not a {what}: it names no schema (a {what} has schema {want}); {fix}")
    if isinstance(got, str) and got in SCHEMAS:
        raise UserError(f"{source}: schema {got} found: this is {SCHEMAS[got]}, not a {what} ({want}); {fix}")
    raise UserError(f"{source}: schema {show(got)} found; this prune-lut reads {what}s of schema {want}: "
                    f"upgrade prune-lut, or {fix}")


def validate(obj: Any, kind: str, source: str) -> Any:
    """Check ``obj`` (parsed JSON) against the kind's schema; returns it unchanged, or raises one UserError."""
    model, _, fix = KINDS[kind]
    if kind in SCHEMA_OF:
        check_schema(obj, kind, source)
    elif not isinstance(obj, dict):
        raise UserError(f"{source}: not a {KINDS[kind][1]}: expected a JSON object, found {show(obj)}; {fix}")
    check_depth(obj, source)
    try:
        model.model_validate(obj)
    except ValidationError as e:
        raise explain(e, source, fix) from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply; not a file prune-lut writes") from None
    return obj


def parse(raw: bytes, source: str) -> Any:
    """JSON bytes parsed by pydantic's Rust parser (twice as fast as ``json`` on a table; it refuses
    nesting past 200 levels itself); a damaged text is one UserError."""
    try:
        return from_json(raw)
    except ValueError as e:
        why = str(e)
        if "recursion limit" in why:
            raise UserError(f"{source}: nested too deeply ({why}); not a file prune-lut writes") from None
        raise UserError(f"{source}: not valid JSON ({why}); is it the right file?") from None


def load(path: str | os.PathLike, kind: str, gz: bool = False) -> dict:
    """Read a file of ``kind`` (bounded in size and nesting; gzip-compressed when ``gz``) and check it."""
    _, what, fix = KINDS[kind]
    raw = read_bytes(path, MAX_JSON_BYTES, what)
    if gz or raw[:2] == GZIP_MAGIC:
        if raw[:2] != GZIP_MAGIC:
            raise UserError(f"{path}: not a {what} (not gzip-compressed: a {what} is gzip JSON); {fix}")
        raw = gunzip(raw, str(path))
    return validate(parse(raw, str(path)), kind, str(path))


def json_schemas() -> dict[str, dict]:
    """Every kind's JSON Schema (for other teams' readers and writers)."""
    return {kind: model.model_json_schema(by_alias=True) for kind, (model, _, _) in KINDS.items()}


if __name__ == "__main__":  # python -m prune_lut.schemas [KIND]
    schemas = json_schemas()
    kind = sys.argv[1] if len(sys.argv) > 1 else None
    if kind is not None and kind not in schemas:
        sys.exit(f"unknown kind {kind!r}; choose one of: {', '.join(schemas)}")
    print(json.dumps(schemas[kind] if kind else schemas, indent=2))
