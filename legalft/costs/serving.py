"""The GPU side that knows the model: memory per replica, tensor parallel, fit, and throughput.

A replica is one copy of the model behind one vLLM server. Its memory is the weights in the chosen
precision plus the KV cache for the answers in flight at the scenario's context, plus a runtime
allowance per GPU; that decides how many GPUs one replica spans (tensor parallel) and whether a GPU
type can serve the model at all. Its throughput comes from a dated, cited row of
``data/serving.toml`` when one matches, otherwise from the catalogue's base figure (which a user's
own measurement overrides) scaled by parameters, precision and memory bandwidth.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from legalft.home import bundled_data_dir

BASE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
"""The model, precision and GPU the catalogue's throughput figure is for."""
BASE_PRECISION = "bf16"
BASE_GPU = "h100"
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class GpuType:
    key: str
    label: str
    memory_gb: float
    memory_bandwidth_tb_s: float
    source: str
    source_date: str


@dataclass(frozen=True)
class ModelShape:
    """What decides a model's serving memory: parameters and the KV cache's shape."""

    name: str
    params_billion: float
    layers: int | None
    kv_heads: int | None
    head_dim: int | None
    source: str

    def kv_bytes_per_token(self) -> float:
        """K and V for every layer, 16-bit; models without a known shape scale the 8B's by size."""
        if self.layers and self.kv_heads and self.head_dim:
            return 2 * self.layers * self.kv_heads * self.head_dim * 2
        return 2 * 32 * 8 * 128 * 2 * self.params_billion / 8.03


@dataclass(frozen=True)
class ThroughputRow:
    model: str
    precision: str
    gpu: str
    tensor_parallel: int
    output_tokens_per_second: float
    engine: str
    measured: bool
    source: str
    source_date: str
    ceiling: bool = False
    note: str = ""


@dataclass(frozen=True)
class ServingData:
    gpu_memory_utilization: float
    runtime_overhead_gb_per_gpu: float
    concurrent_sequences: int
    max_tensor_parallel: int
    precisions: dict[str, float]
    gpus: dict[str, GpuType]
    models: dict[str, ModelShape]
    throughput: list[ThroughputRow]


@lru_cache(maxsize=2)
def load_serving_data(path: str | None = None) -> ServingData:
    with open(path or bundled_data_dir() / "serving.toml", "rb") as handle:
        data = tomllib.load(handle)
    settings = data["serving"]
    return ServingData(
        gpu_memory_utilization=float(settings["gpu_memory_utilization"]),
        runtime_overhead_gb_per_gpu=float(settings["runtime_overhead_gb_per_gpu"]),
        concurrent_sequences=int(settings["concurrent_sequences"]),
        max_tensor_parallel=int(settings["max_tensor_parallel"]),
        precisions={k: float(v) for k, v in data["precisions"].items()},
        gpus={k: GpuType(key=k, label=v["label"], memory_gb=float(v["memory_gb"]),
                         memory_bandwidth_tb_s=float(v["memory_bandwidth_tb_s"]), source=v["source"],
                         source_date=str(v["source_date"])) for k, v in data["gpus"].items()},
        models={k: ModelShape(name=k, params_billion=float(v["params_billion"]), layers=v.get("layers"),
                              kv_heads=v.get("kv_heads"), head_dim=v.get("head_dim"), source=v.get("source", ""))
                for k, v in data["models"].items()},
        throughput=[ThroughputRow(model=r["model"], precision=r["precision"], gpu=r["gpu"],
                                  tensor_parallel=int(r["tensor_parallel"]),
                                  output_tokens_per_second=float(r["output_tokens_per_second"]),
                                  engine=r["engine"], measured=bool(r["measured"]), source=r["source"],
                                  source_date=str(r["source_date"]), ceiling=bool(r.get("ceiling", False)),
                                  note=r.get("note", "")) for r in data.get("throughput", [])],
    )


def model_shape(model: str) -> ModelShape:
    """The model's shape from the table, or one from the size in its name (labelled as such)."""
    from legalft.costs import model_size_billion

    data = load_serving_data()
    if model in data.models:
        return data.models[model]
    size = model_size_billion(model)
    if size is None:
        raise ValueError(f"cannot tell the size of {model!r}: name a model with its size (\"…-8B…\")")
    return ModelShape(name=model, params_billion=size, layers=None, kv_heads=None, head_dim=None,
                      source=f"size read from the name ({size:g}B); KV cache scaled from Llama 3.1 8B's")


@dataclass(frozen=True)
class ServingPlan:
    """How one replica of a model is served on a GPU type, and what it delivers."""

    model: str
    precision: str
    gpu: GpuType
    context_tokens: int
    concurrent_sequences: int
    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    """Runtime allowance for all of the replica's GPUs."""
    usable_gb_per_gpu: float
    tensor_parallel: int | None
    """GPUs per replica; None when the model does not fit one node of this GPU."""
    tokens_per_second: float | None
    """Output tokens per second of one replica; None when it does not fit."""
    throughput_basis: str
    throughput_source_date: str
    throughput_measured: bool
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.tensor_parallel is not None

    @property
    def needed_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb + self.overhead_gb

    def throughput_age(self, today: date | None = None) -> str:
        from legalft.costs import _months_between, _period_start

        parsed = _period_start(self.throughput_source_date)
        if parsed is None:
            return "undated"
        return f"{'up to ' if parsed[1] == 'year' else ''}{_months_between(parsed[0], today or date.today())} months old"

    def describe(self) -> str:
        if not self.fits:
            return self.notes[0]
        gpus = "one GPU" if self.tensor_parallel == 1 else f"{self.tensor_parallel} GPUs (tensor parallel)"
        return (f"{self.model} in {self.precision} needs {self.needed_gb:,.1f} GB a replica (weights "
                f"{self.weights_gb:,.1f} + KV cache {self.kv_cache_gb:,.1f} + runtime {self.overhead_gb:,.1f}): "
                f"{gpus} of {self.gpu.label} ({self.usable_gb_per_gpu:,.0f} GB usable each); "
                f"{self.tokens_per_second:,.0f} output tokens/s a replica ({self.throughput_basis}; "
                f"{self.throughput_age()})")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "precision": self.precision, "gpu": self.gpu.key, "fits": self.fits,
                "weights_gb": round(self.weights_gb, 2), "kv_cache_gb": round(self.kv_cache_gb, 2),
                "overhead_gb": round(self.overhead_gb, 2), "needed_gb": round(self.needed_gb, 2),
                "usable_gb_per_gpu": round(self.usable_gb_per_gpu, 2), "gpus_per_replica": self.tensor_parallel,
                "tokens_per_second_per_replica": None if self.tokens_per_second is None else round(self.tokens_per_second, 1),
                "throughput_basis": self.throughput_basis, "throughput_source_date": self.throughput_source_date,
                "throughput_measured": self.throughput_measured, "notes": list(self.notes)}


def plan_serving(
    model: str,
    gpu: str = BASE_GPU,
    precision: str = BASE_PRECISION,
    context_tokens: int = 1200,
    *,
    base_tokens_per_second: float | None = None,
    base_label: str = "the catalogue's base figure",
    base_source_date: str = "",
    base_measured: bool = False,
    concurrent_sequences: int | None = None,
) -> ServingPlan:
    """GPUs per replica and a replica's throughput for ``model`` on ``gpu`` in ``precision``.

    ``base_tokens_per_second`` is the throughput of Llama-3.1-8B bf16 on one H100 (the catalogue's
    ``gpu_tokens_per_second``, or the user's own measurement); other cases scale from it unless
    ``data/serving.toml`` has a measured row for them.
    """
    data = load_serving_data()
    if gpu not in data.gpus:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(data.gpus)}")
    if precision not in data.precisions:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(data.precisions)}")
    gpu_type = data.gpus[gpu]
    shape = model_shape(model)
    sequences = concurrent_sequences or data.concurrent_sequences
    weights = shape.params_billion * data.precisions[precision]
    kv_value_bytes = 1.0 if precision == "fp8" else 2.0
    kv = shape.kv_bytes_per_token() / 2 * kv_value_bytes * context_tokens * sequences / 1e9
    usable = gpu_type.memory_gb * data.gpu_memory_utilization
    notes: list[str] = []
    if shape.layers is None:
        notes.append(shape.source)
    tp = None
    for size in TENSOR_PARALLEL_SIZES:
        if size > data.max_tensor_parallel or (shape.kv_heads and shape.kv_heads % size):
            continue
        if size * usable >= weights + kv + size * data.runtime_overhead_gb_per_gpu:
            tp = size
            break
    if tp is None:
        largest = min(data.max_tensor_parallel, TENSOR_PARALLEL_SIZES[-1])
        need = weights + kv + largest * data.runtime_overhead_gb_per_gpu
        notes.insert(0, (
            f"{model} in {precision} does not fit: it needs {need:,.0f} GB, and {largest} × {gpu_type.label} "
            f"(one node) hold {largest * usable:,.0f} GB usable. Choose a smaller precision (fp8, int4), a GPU "
            f"with more memory, or a smaller model."))
        return ServingPlan(model=model, precision=precision, gpu=gpu_type, context_tokens=context_tokens,
                           concurrent_sequences=sequences, weights_gb=weights, kv_cache_gb=kv,
                           overhead_gb=largest * data.runtime_overhead_gb_per_gpu, usable_gb_per_gpu=usable,
                           tensor_parallel=None, tokens_per_second=None, throughput_basis="",
                           throughput_source_date="", throughput_measured=False, notes=notes)
    if tp > 1:
        notes.append(f"one replica spans {tp} GPUs: the model does not fit one {gpu_type.label}")

    row = next((r for r in data.throughput if not r.ceiling and r.model == model and r.precision == precision
                and r.gpu == gpu and r.tensor_parallel == tp), None)
    if row is not None:
        rate = row.output_tokens_per_second
        basis = f"{'measured' if row.measured else 'assumed'}: {row.engine}, {row.source}"
        source_date, measured = row.source_date, row.measured
    else:
        if base_tokens_per_second is None:
            raise ValueError("give the base throughput (the catalogue's gpu_tokens_per_second)")
        base = data.models[BASE_MODEL]
        scale = (base.params_billion * data.precisions[BASE_PRECISION]) / (shape.params_billion * data.precisions[precision])
        bandwidth = gpu_type.memory_bandwidth_tb_s / data.gpus[BASE_GPU].memory_bandwidth_tb_s
        rate = base_tokens_per_second * scale * bandwidth * tp
        if scale == 1 and bandwidth == 1 and tp == 1:
            basis = base_label
        else:
            basis = (f"scaled from {base_tokens_per_second:,.0f} tokens/s for 8B bf16 on one H100 ({base_label}) "
                     f"× {scale:.3f} (bytes of weights) × {bandwidth:.2f} (memory bandwidth) × {tp} GPUs: "
                     f"an assumption, decode being memory-bound")
        source_date, measured = base_source_date, base_measured and scale == 1 and bandwidth == 1 and tp == 1
    return ServingPlan(model=model, precision=precision, gpu=gpu_type, context_tokens=context_tokens,
                       concurrent_sequences=sequences, weights_gb=weights, kv_cache_gb=kv,
                       overhead_gb=tp * data.runtime_overhead_gb_per_gpu, usable_gb_per_gpu=usable,
                       tensor_parallel=tp, tokens_per_second=rate, throughput_basis=basis,
                       throughput_source_date=source_date, throughput_measured=measured, notes=notes)
