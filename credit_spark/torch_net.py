"""The neural network in plain torch: the model, one data-parallel training body, inference.

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

* :func:`fit` — the one training body. The launcher differences (``torch.distributed`` with DDP,
  or Horovod) live behind the small :class:`Comm` interface; every decision (epoch count, early
  stop, best epoch) is taken on all-reduced numbers, so all ranks take it together. The learning
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
import time
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


# --------------------------------------------------------------------------- communication
class Comm:
    """What the training body needs from a launcher. This base class is one process alone."""

    rank = 0
    size = 1
    local_rank = 0
    name = "single"

    def wrap(self, model, optimizer):
        """(module to call in training, optimizer): gradients averaged across ranks."""
        return model, optimizer

    def sum(self, values: list[float]) -> list[float]:
        return [float(v) for v in values]

    def gather(self, value: Any) -> list[Any]:
        return [value]

    def close(self) -> None:
        pass


class TorchDistributedComm(Comm):
    """``torch.distributed`` (env:// from torchrun, as TorchDistributor starts it) with DDP:
    Gloo on CPU, NCCL on GPU."""

    name = "torch_distributed"

    def __init__(self, use_gpu: bool) -> None:
        import torch
        import torch.distributed as dist

        self.cuda = use_gpu and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if self.cuda else "gloo")
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{self.local_rank}") if self.cuda else torch.device("cpu")

    def wrap(self, model, optimizer):
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.cuda else None
        return DistributedDataParallel(model, device_ids=ids), optimizer   # broadcasts rank 0's weights

    def sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().tolist()

    def gather(self, value: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class HorovodComm(Comm):
    """Horovod (Gloo controller): ``DistributedOptimizer`` averages gradients, rank 0's initial
    weights and optimizer state are broadcast."""

    name = "horovod"

    def __init__(self) -> None:
        import horovod.torch as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()

    def wrap(self, model, optimizer):
        hvd = self.hvd
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        return model, hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())

    def sum(self, values: list[float]) -> list[float]:
        import torch

        tensor = torch.tensor(values, dtype=torch.float64)
        return self.hvd.allreduce(tensor, op=self.hvd.Sum).tolist()

    def gather(self, value: Any) -> list[Any]:
        return list(self.hvd.allgather_object(value))

    def close(self) -> None:
        self.hvd.shutdown()


# --------------------------------------------------------------------------- training
def pick_device(use_gpu: bool, local_rank: int = 0):
    import torch

    if use_gpu and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def _tensors(rows: Arrays, device) -> tuple:
    import torch

    return (torch.as_tensor(rows.numeric, dtype=torch.float32, device=device),
            torch.as_tensor(rows.categorical, dtype=torch.long, device=device),
            torch.as_tensor(rows.label, dtype=torch.long, device=device),
            torch.as_tensor(rows.weight, dtype=torch.float32, device=device))


def _weighted_loss_sums(model, tensors: tuple, batch_size: int) -> tuple[float, float]:
    """(sum of weight * cross-entropy, sum of weights) over ``tensors``, without gradients."""
    import torch
    import torch.nn.functional as F

    numeric, categorical, label, weight = tensors
    total, weights = 0.0, 0.0
    model.eval()
    with torch.no_grad():
        for start in range(0, label.shape[0], max(batch_size, 4096)):
            end = start + max(batch_size, 4096)
            log_p = log_probabilities(model(numeric[start:end], categorical[start:end]))
            loss = F.nll_loss(log_p, label[start:end], reduction="none")
            total += float((loss * weight[start:end]).sum())
            weights += float(weight[start:end].sum())
    return total, weights


def member_loss(output, label):
    """Per row: the members' mean cross-entropy (each member learns on its own loss, so the
    ensemble stays a set of independent networks)."""
    import torch.nn.functional as F

    logits = member_logits(output)
    k, n, c = logits.shape
    return F.cross_entropy(logits.reshape(k * n, c), label.repeat(k), reduction="none").view(k, n).mean(dim=0)


def learning_rate_schedule(optimizer, name: str, steps_per_epoch: int, max_epochs: int):
    """None for a constant rate; for ``cosine`` a LambdaLR stepped once per optimizer step."""
    import torch

    if name == "constant":
        return None
    if name != "cosine":
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {name!r}")
    total = max(1, steps_per_epoch * max_epochs)
    warmup = max(1, min(steps_per_epoch, total // 10))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(comm: Comm, train: Arrays, validation: Arrays | None, spec: NetSpec, params: FitParams) -> dict:
    """Train on this rank's rows, in step with the other ranks; return the best epoch's weights
    (rank 0) and what happened (every rank).

    Every rank runs the same number of steps per epoch (the largest shard's; smaller shards wrap
    around), as collective operations must match. Early stopping watches the class-weighted
    validation loss summed over all ranks' validation shards.
    """
    import torch

    if len(train) == 0:
        raise ValueError(f"rank {comm.rank} of {comm.size} received no training rows")
    torch.manual_seed(params.seed)                    # identical initial weights on every rank
    torch.set_num_threads(max(1, params.threads))
    device = pick_device(params.use_gpu, comm.local_rank)
    core = build_net(spec).to(device)
    optimizer = torch.optim.AdamW(core.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    model, optimizer = comm.wrap(core, optimizer)
    numeric, categorical, label, weight = _tensors(train, device)
    held_out = _tensors(validation, device) if validation is not None and len(validation) else None
    sizes = comm.gather(len(train))
    batch = params.batch_size
    steps = max(1, math.ceil(max(sizes) / batch))
    rng = np.random.default_rng(params.seed + 1000 * comm.rank)
    schedule = learning_rate_schedule(optimizer, params.lr_schedule, steps, params.max_epochs)
    history: list[dict] = []
    best_loss, best_epoch, best_state, waited = math.inf, -1, None, 0
    started = time.perf_counter()
    for epoch in range(params.max_epochs):
        model.train()
        needed = steps * batch
        order = np.concatenate([rng.permutation(len(train)) for _ in range(math.ceil(needed / len(train)))])
        order = torch.as_tensor(order[:needed], device=device)
        epoch_started = time.perf_counter()
        loss_total = 0.0
        for step in range(steps):
            rows = order[step * batch:(step + 1) * batch]
            loss = member_loss(model(numeric[rows], categorical[rows]), label[rows])
            loss = (loss * weight[rows]).sum() / weight[rows].sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            loss_total += float(loss.detach())
        seconds = time.perf_counter() - epoch_started
        train_loss_sum, step_count, samples = comm.sum([loss_total, steps, needed])
        record = {"epoch": epoch + 1, "train_loss": train_loss_sum / step_count,
                  "samples_per_second": samples / max(seconds, 1e-9), "seconds": seconds}
        if held_out is not None:   # the same on every rank: a job has a validation folder or not
            val_total, val_weights = comm.sum(list(_weighted_loss_sums(core, held_out, batch)))
            if val_weights > 0:
                record["validation_loss"] = val_total / val_weights
        history.append(record)
        watched = record.get("validation_loss", record["train_loss"])
        if watched < best_loss - 1e-5:
            best_loss, best_epoch, waited = watched, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
            if comm.rank == 0 and params.checkpoint_dir:
                write_bytes(f"{params.checkpoint_dir.rstrip('/')}/best.pt", state_bytes(best_state))
        else:
            waited += 1
            if waited >= params.patience:
                break
        if comm.rank == 0:
            logger.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in record.items()})
    core.load_state_dict(best_state)
    checksums = comm.gather(state_checksum(core.state_dict()))
    trained_rows = int(comm.sum([len(train)])[0])
    return {
        "state": state_bytes(core.state_dict()) if comm.rank == 0 else None,
        "history": history,
        "best_epoch": best_epoch,
        "epochs": len(history),
        "rank_checksums": checksums,
        "world_size": comm.size,
        "backend": comm.name,
        "device": str(device),
        "train_rows": trained_rows,
        "seconds": time.perf_counter() - started,
        # epoch-averaged throughput of the whole group (all ranks' samples per second)
        "samples_per_second": float(np.mean([h["samples_per_second"] for h in history])),
    }


# --------------------------------------------------------------------------- data shards
def read_shard(directory: str, rank: int, size: int, num_numeric: int, num_categorical: int) -> Arrays:
    """Rank ``rank``'s share of a Parquet folder (files ``rank``, ``rank + size``, ...), read
    straight from storage with pyarrow: the driver never holds the rows."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    if "://" in directory:
        filesystem, path = fs.FileSystem.from_uri(directory)
    else:
        filesystem, path = fs.LocalFileSystem(), os.path.abspath(directory)
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=False))
    files = sorted(i.path for i in infos if i.is_file and i.path.endswith(".parquet"))
    mine = files[rank::size]
    if not mine:
        return Arrays(np.zeros((0, num_numeric), np.float32), np.zeros((0, num_categorical), np.int64),
                      np.zeros(0, np.int64), np.zeros(0, np.float32))
    table = pq.ParquetDataset(mine, filesystem=filesystem).read(columns=["numeric", "categorical", "label",
                                                                         "weight"])
    n = table.num_rows

    def matrix(column: str, width: int, dtype) -> np.ndarray:
        flat = table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        # Arrow buffers are read-only; torch wants writable memory (np.require copies only then)
        return np.require(flat.astype(dtype, copy=False), requirements=["W"]).reshape(n, width)

    return Arrays(numeric=matrix("numeric", num_numeric, np.float32),
                  categorical=matrix("categorical", num_categorical, np.int64),
                  label=table.column("label").to_numpy().astype(np.int64),
                  weight=table.column("weight").to_numpy().astype(np.float32))


def run_job(comm: Comm, job: dict) -> dict:
    """One rank of a training job described by ``job`` (built by credit_spark.neural)."""
    spec = NetSpec.from_json(job["net_spec"])
    params = FitParams(**job["fit_params"])
    width = len(spec.cardinalities)
    train = read_shard(job["train_dir"], comm.rank, comm.size, spec.num_numeric, width)
    validation = (read_shard(job["validation_dir"], comm.rank, comm.size, spec.num_numeric, width)
                  if job.get("validation_dir") else None)
    return fit(comm, train, validation, spec, params)


def torch_distributor_main(job: dict) -> None:
    """Entry point of each TorchDistributor process (torchrun sets the rendezvous variables).

    Rank 0 writes the result to ``job["result_path"]`` and every rank returns None: in local mode
    TorchDistributor has *every* process pickle its return value to one shared file, the last
    writer wins, so a returned result would come from a random rank."""
    import pickle

    comm = TorchDistributedComm(job["fit_params"]["use_gpu"])
    try:
        result = run_job(comm, job)
        if comm.rank == 0:
            write_bytes(job["result_path"], pickle.dumps(result))
    finally:
        comm.close()


def horovod_main(job: dict) -> dict:
    """Entry point of each process ``horovod.spark.run`` starts."""
    comm = HorovodComm()
    try:
        return run_job(comm, job)
    finally:
        comm.close()


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
