"""The neural network in plain torch: the model, its saved state, inference (the data-parallel
training body is :mod:`credit_spark.ml.torch_train`).

Nothing here imports Spark: these functions run inside the training processes that
TorchDistributor or Horovod start on the executors, inside the executors' Python workers at
scoring time, and in ``scripts/nn_gpu_check.py`` on a machine with a GPU and no Spark at all.

* :class:`NetSpec` — the architecture, chosen on validation from what the tabular deep-learning
  literature shows closes the gap to trees (Gorishniy et al., "Revisiting Deep Learning Models
  for Tabular Data", 2021, and "On Embeddings for Numerical Features", 2022):

  - numeric inputs ``standard`` (standardised values), ``piecewise_linear`` (one component per
    quantile bin of the training values: 0 below the bin, 1 above it, linear inside) or
    ``quantile`` (normal scores of the training values' empirical distribution, interpolated
    between the same quantile edges);
  - a learned embedding per categorical column;
  - body ``mlp`` (Linear -> LayerNorm -> ReLU -> Dropout blocks) or ``resnet`` (pre-norm residual
    blocks). LayerNorm rather than BatchNorm: it has no running statistics, so every rank holds
    exactly the same state;
  - ``ensemble_size`` networks of different initial weights trained side by side on the same
    batches (each on its own loss), their probabilities averaged.

* :func:`credit_spark.ml.torch_train.fit` — the one training body of both launchers; the learning
  rate is constant or follows a warm-up then a cosine decay over ``max_epochs``.
* :func:`predict_proba` — batched inference; :func:`cached_model` loads a model once per process.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- specification
ARCHITECTURES = ("mlp", "resnet")
NUMERIC_ENCODINGS = ("standard", "piecewise_linear", "quantile")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class NetSpec:
    """The architecture: enough to rebuild the network around a saved state dict. Every field
    added after the first release has a default that rebuilds the network that release saved."""

    num_numeric: int
    #: per categorical column: number of distinct indices (StringIndexer labels + 1 for "unseen")
    cardinalities: list[int]
    num_classes: int
    hidden_layers: list[int] = field(default_factory=lambda: [128, 64])
    dropout: float = 0.2
    embedding_dim: int = 8
    #: "mlp" | "resnet": a residual stream of hidden_layers[0] units, one block per entry
    #: (the entry is the block's inner width)
    architecture: str = "mlp"
    #: "standard" | "piecewise_linear" | "quantile" (see the module docs)
    numeric_encoding: str = "standard"
    #: per numeric input, its ascending distinct quantile edges on the training rows (at least
    #: two); used by the piecewise_linear and quantile encodings
    bin_edges: list[list[float]] = field(default_factory=list)
    #: networks trained side by side, probabilities averaged
    ensemble_size: int = 1

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.numeric_encoding not in NUMERIC_ENCODINGS:
            raise ValueError(f"numeric_encoding must be one of {NUMERIC_ENCODINGS}, got {self.numeric_encoding!r}")
        if self.numeric_encoding != "standard" and len(self.bin_edges) != self.num_numeric:
            raise ValueError(f"numeric_encoding {self.numeric_encoding!r} needs bin edges for each of the "
                             f"{self.num_numeric} numeric inputs, got {len(self.bin_edges)}")
        if any(len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])) for e in self.bin_edges):
            raise ValueError("bin_edges: each input needs at least two strictly ascending edges")
        if self.ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {self.ensemble_size}")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "NetSpec":
        return cls(**json.loads(text))

    @property
    def num_bins(self) -> int:
        """The widest input's bin count (narrower inputs are padded with masked bins)."""
        return max((len(e) - 1 for e in self.bin_edges), default=0)

    def numeric_width(self) -> int:
        """Columns the numeric inputs take in the first layer."""
        return self.num_numeric * self.num_bins if self.numeric_encoding == "piecewise_linear" else self.num_numeric


def auto_batch_size(rows: int, processes: int) -> int:
    """Rows per step and process for ``batch_size: auto``: a power of two near a 32nd of each
    process's rows, within [64, 1024]. Small data sets then get enough steps per epoch to learn
    before early stopping (a thousand rows in batches of 512 is two steps an epoch), large ones
    batches that keep a core or a GPU busy."""
    per_process = max(1, rows // max(1, processes))
    return int(min(1024, max(64, 2 ** math.ceil(math.log2(max(1.0, per_process / 32))))))


def quantile_edges(quantiles: list[float]) -> list[float]:
    """Distinct ascending bin edges from a column's quantiles (a constant column gets one bin
    of width 1 around its value, so every input has an encoding)."""
    edges = sorted({float(q) for q in quantiles if q is not None and math.isfinite(q)})
    if not edges:
        return [0.0, 1.0]
    if len(edges) == 1:
        return [edges[0] - 0.5, edges[0] + 0.5]
    return edges


@dataclass(frozen=True)
class FitParams:
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 512
    max_epochs: int = 30
    #: epochs without a better validation loss before stopping
    patience: int = 4
    seed: int = 42
    #: "constant", or "cosine": linear warm-up over the first epoch (at most a tenth of all
    #: steps), then a cosine decay to zero at max_epochs
    lr_schedule: str = "constant"
    use_gpu: bool = False
    #: intra-op threads per training process (the Spark task's cores)
    threads: int = 1
    #: rank 0 writes best.pt here (local path or a pyarrow-supported URI); None = no checkpoints
    checkpoint_dir: str | None = None


@dataclass
class Arrays:
    """One rank's rows: standardised numeric inputs, category indices, label index, weight."""

    numeric: np.ndarray        # float32 [n, num_numeric]
    categorical: np.ndarray    # int64 [n, num_categorical]
    label: np.ndarray          # int64 [n]
    weight: np.ndarray         # float32 [n]

    def __len__(self) -> int:
        return int(self.label.shape[0])


def embedding_width(cardinality: int, cap: int) -> int:
    """A small embedding per column: at most ``cap``, never wider than half its categories."""
    return max(1, min(cap, (cardinality + 1) // 2))


def build_net(spec: NetSpec):
    """The torch module of ``spec``: one :class:`TabularNet`, or an ensemble of them (its
    forward gives logits [members, rows, classes])."""
    import torch
    from torch import nn

    class NumericEncoder(nn.Module):
        """Piecewise-linear components per quantile bin (``piecewise_linear``), or their sum as a
        position in the training distribution turned into a normal score (``quantile``). The edges
        come from the spec, so they are buffers outside the state dict."""

        def __init__(self) -> None:
            super().__init__()
            bins = spec.num_bins
            lower = torch.zeros(spec.num_numeric, bins, dtype=torch.float32)
            width = torch.ones(spec.num_numeric, bins, dtype=torch.float32)
            floor = torch.zeros(spec.num_numeric, bins, dtype=torch.float32)
            ceiling = torch.ones(spec.num_numeric, bins, dtype=torch.float32)
            mask = torch.zeros(spec.num_numeric, bins, dtype=torch.float32)
            for i, edges in enumerate(spec.bin_edges):
                n = len(edges) - 1
                e = torch.tensor(edges, dtype=torch.float64)
                lower[i, :n], width[i, :n], mask[i, :n] = e[:-1].float(), (e[1:] - e[:-1]).float(), 1.0
                if spec.numeric_encoding == "piecewise_linear":   # below the first and above the last
                    floor[i, 0], ceiling[i, n - 1] = -math.inf, math.inf   # bin: linear, unclipped
            self.register_buffer("lower", lower, persistent=False)
            self.register_buffer("width", width, persistent=False)
            self.register_buffer("floor", floor, persistent=False)
            self.register_buffer("ceiling", ceiling, persistent=False)
            self.register_buffer("mask", mask, persistent=False)
            self.register_buffer("bins", mask.sum(dim=1), persistent=False)

        def forward(self, x):
            z = (x.unsqueeze(-1) - self.lower) / self.width
            z = torch.minimum(torch.maximum(z, self.floor), self.ceiling) * self.mask
            if spec.numeric_encoding == "piecewise_linear":
                return z.flatten(1)
            position = (z.sum(dim=-1) / self.bins).clamp(1e-3, 1 - 1e-3)
            return math.sqrt(2.0) * torch.special.erfinv(2.0 * position - 1.0)

    class ResidualBlock(nn.Module):
        def __init__(self, width: int, inner: int) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(width)
            self.inner = nn.Linear(width, inner)
            self.outer = nn.Linear(inner, width)
            self.dropout = nn.Dropout(spec.dropout)

        def forward(self, x):
            return x + self.dropout(self.outer(self.dropout(torch.relu(self.inner(self.norm(x))))))

    class TabularNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = NumericEncoder() if spec.numeric_encoding != "standard" else nn.Identity()
            self.embeddings = nn.ModuleList(
                nn.Embedding(card, embedding_width(card, spec.embedding_dim)) for card in spec.cardinalities)
            width = spec.numeric_width() + sum(e.embedding_dim for e in self.embeddings)
            layers: list[nn.Module] = []
            if spec.architecture == "resnet":
                stream = spec.hidden_layers[0]
                layers.append(nn.Linear(width, stream))
                layers += [ResidualBlock(stream, inner) for inner in spec.hidden_layers]
                layers += [nn.LayerNorm(stream), nn.ReLU()]
                width = stream
            else:
                for hidden in spec.hidden_layers:
                    layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(spec.dropout)]
                    width = hidden
            layers.append(nn.Linear(width, spec.num_classes))
            self.mlp = nn.Sequential(*layers)    # mlp[0]: the first layer, whatever the body

        def forward(self, numeric, categorical):
            parts = [self.encoder(numeric), *(emb(categorical[:, i]) for i, emb in enumerate(self.embeddings))]
            return self.mlp(torch.cat(parts, dim=1))

    class EnsembleNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(TabularNet() for _ in range(spec.ensemble_size))

        def forward(self, numeric, categorical):
            return torch.stack([m(numeric, categorical) for m in self.members])

    # one member keeps the first release's module (and state dict keys), so its models still load
    return TabularNet() if spec.ensemble_size == 1 else EnsembleNet()


def member_logits(output):
    """Logits [members, rows, classes] from either module's output."""
    return output.unsqueeze(0) if output.dim() == 2 else output


def log_probabilities(output):
    """Log of the members' mean probability [rows, classes]: what the model predicts."""
    import torch

    logits = member_logits(output)
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(logits.shape[0])


def members(model) -> list:
    """The single networks of a model (one, or an ensemble's members)."""
    return list(model.members) if hasattr(model, "members") else [model]


# --------------------------------------------------------------------------- state
def state_bytes(state: dict) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def load_state(data: bytes) -> dict:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def state_checksum(state: dict) -> str:
    """SHA-256 of every tensor's bytes, in key order: equal on two ranks iff their weights are."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def read_bytes(uri: str) -> bytes:
    """Read a file written by :func:`write_bytes`."""
    if "://" not in uri:
        with open(uri, "rb") as source:
            return source.read()
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as source:
        return source.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write a file on a local path or any filesystem pyarrow knows (s3://, gs://, hdfs://, ...)."""
    if "://" not in uri:
        os.makedirs(os.path.dirname(uri) or ".", exist_ok=True)
        tmp = f"{uri}.tmp"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, uri)   # a reader never sees half a checkpoint
        return
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as out:
        out.write(data)


def pick_device(use_gpu: bool, local_rank: int = 0):
    import torch

    if use_gpu and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


# --------------------------------------------------------------------------- inference
_MODELS: dict[str, Any] = {}


def cached_model(key: str, net_spec: str, state: bytes):
    """The model for ``key``, built once per process (an executor's Python worker is reused
    across tasks, so a night's batches share one load)."""
    if key not in _MODELS:
        model = build_net(NetSpec.from_json(net_spec))
        model.load_state_dict(load_state(state))
        model.to(pick_device(True))
        model.eval()
        _MODELS.clear()                 # one model per process: a new version replaces the old
        _MODELS[key] = model
    return _MODELS[key]


def predict_proba(model, numeric: np.ndarray, categorical: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Class probabilities [n, num_classes] (float64) for rows of inputs, in batches."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, numeric.shape[0], batch_size):
            num = torch.as_tensor(numeric[start:start + batch_size], dtype=torch.float32, device=device)
            cat = torch.as_tensor(categorical[start:start + batch_size], dtype=torch.long, device=device)
            out.append(torch.exp(log_probabilities(model(num, cat))).double().cpu().numpy())
    if not out:
        return np.zeros((0, members(model)[0].mlp[-1].out_features))
    return np.concatenate(out)
