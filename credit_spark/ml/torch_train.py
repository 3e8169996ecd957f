"""Data-parallel training of the network (:mod:`credit_spark.ml.torch_net`): the one training body
:func:`fit`, the launcher differences behind the small :class:`Comm` interface
(``torch.distributed`` with DDP, or Horovod), and the entry points the training processes run
(:func:`torch_distributor_main`, :func:`horovod_main`) with their data shards.

Every decision (epoch count, early stop, best epoch) is taken on all-reduced numbers, so all
ranks take it together. Nothing here imports Spark: it runs inside the processes TorchDistributor
or Horovod start on the executors, and in ``scripts/nn_gpu_check.py`` on a machine without Spark.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import time
from typing import Any

import numpy as np

from credit_spark.ml.torch_net import (LR_SCHEDULES, Arrays, FitParams, NetSpec, build_net, log_probabilities, member_logits,
                                    pick_device, state_bytes, state_checksum, write_bytes)

logger = logging.getLogger(__name__)


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
    """One rank of a training job described by ``job`` (built by credit_spark.ml.neural)."""
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
    comm = TorchDistributedComm(job["fit_params"]["use_gpu"])
    try:
        result = run_job(comm, job)
        if comm.rank == 0:
            write_bytes(job["result_path"], result_to_json(result))
    finally:
        comm.close()


def result_to_json(result: dict) -> bytes:
    """A training result as JSON (the weights as base64 of ``torch.save`` bytes). It crosses shared
    storage, so it is data, never pickle: whoever can write the staging folder must not be able to
    run code on the driver."""
    state = result.get("state")
    return json.dumps({**result, "state": None if state is None else base64.b64encode(state).decode("ascii")}).encode()


def result_from_json(data: bytes) -> dict:
    """The inverse of :func:`result_to_json`; the weights come back as bytes, loaded later with
    ``torch.load(weights_only=True)`` (:func:`credit_spark.ml.torch_net.load_state`)."""
    result = json.loads(data)
    if not isinstance(result, dict) or not isinstance(result.get("state"), str):
        raise ValueError("the network's training result has no weights (rank 0 did not finish?)")
    return {**result, "state": base64.b64decode(result["state"], validate=True)}


def horovod_main(job: dict) -> dict:
    """Entry point of each process ``horovod.spark.run`` starts."""
    comm = HorovodComm()
    try:
        return run_job(comm, job)
    finally:
        comm.close()
