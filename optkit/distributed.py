"""Several training processes: which one this is, how they start, and how they agree.

A multi-process run is N copies of the same ``optkit run`` command. They read the process group
from the environment that ``torch.distributed.run`` (torchrun), ``accelerate launch --multi_gpu``
or ``optkit run --processes N`` sets: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. Every rank takes part in the training
steps; only rank 0 builds the other steps, commits cache entries, evaluates and writes reports
(``optkit.runner`` holds that logic).

What Accelerate 1.15 needs to see a multi-process CPU run (read in its ``state.py`` and
``commands/launch.py``, then checked here): ``PartialState(cpu=True)`` together with
``LOCAL_RANK`` or ``WORLD_SIZE > 1``; that gives ``DistributedType.MULTI_CPU`` on gloo. Without
``cpu=True``, a process on a machine without CUDA sees ``DistributedType.NO`` and believes it is
alone, which is what torchrun showed; ``PartialState()`` never reads ``ACCELERATE_USE_CPU``, only
``Accelerator()`` does, so whichever of the two runs first decides. ``accelerate launch --cpu
--num_processes N`` starts one process (its simple launcher; several CPU processes need
``--multi_gpu`` or an MPI host file), and a config file with ``distributed_type: MULTI_CPU`` takes
the same simple path. ``init_state`` therefore sets up the state itself, with ``cpu=True`` when
there is no CUDA, before any pass asks Accelerate for a device.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from optkit.envinfo import available_cpus
from optkit.errors import OptkitError

__all__ = [
    "DistributedError",
    "agree",
    "finish",
    "init_state",
    "is_main",
    "launch",
    "local_world_size",
    "rank",
    "world_size",
]

# How long a rank waits in a collective (gloo/NCCL) for the others. Rank 0 builds every step that
# does not train (export, quantisation) while the others wait for the next training step, so this
# bounds the longest such stretch, not a training step. A rank that dies is noticed at once anyway:
# its sockets close. OPTKIT_DIST_TIMEOUT_S overrides it.
_DEFAULT_TIMEOUT_S = 4 * 3600
_STOP_GRACE_S = 20.0  # after SIGTERM, how long the other ranks get to clean up before SIGKILL


class DistributedError(OptkitError):
    """One process of a multi-process run failed or disagrees with the others; exit code 1."""

    exit_code = 1


def world_size() -> int:
    """Processes in this run, from the launcher's environment (1 when not launched as several)."""
    return _env_int("WORLD_SIZE", 1)


def local_world_size() -> int:
    """Processes of this run on this machine (they share its memory)."""
    return _env_int("LOCAL_WORLD_SIZE", world_size()) if world_size() > 1 else 1


def rank() -> int:
    """This process's global rank (0 when alone)."""
    return _env_int("RANK", 0)


def is_main() -> bool:
    """Rank 0: the one process that commits cache entries, evaluates and writes reports."""
    return rank() == 0


def init_state() -> Any | None:
    """Accelerate's process state for this launch, set up once, with gloo on a machine without CUDA.

    Raises ``DistributedError`` when Accelerate does not see the process group the environment
    describes (e.g. ``WORLD_SIZE=2`` but one process): training alone on a shard would be silently wrong.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import InitProcessGroupKwargs

    n = world_size()
    if n <= 1:
        return None  # one process: Accelerator() sets itself up as it always did
    cpu = not torch.cuda.is_available()
    local, gpus = _env_int("LOCAL_WORLD_SIZE", n), 0 if cpu else torch.cuda.device_count()
    if not cpu and local > gpus:
        raise DistributedError(
            f"{local} processes on this machine need one GPU each, and it has {gpus}; start at most {gpus}, or "
            "train on the CPU with CUDA_VISIBLE_DEVICES= (empty)"
        )
    if cpu:
        os.environ["ACCELERATE_USE_CPU"] = "true"  # so every later Accelerator() agrees with this state
    timeout = timedelta(seconds=_env_int("OPTKIT_DIST_TIMEOUT_S", _DEFAULT_TIMEOUT_S))
    state = PartialState(cpu=cpu, **InitProcessGroupKwargs(timeout=timeout).to_kwargs())
    if state.num_processes != n or state.process_index != rank():
        raise DistributedError(
            f"the launcher says this is rank {rank()} of {n} processes, but Accelerate set up rank "
            f"{state.process_index} of {state.num_processes} ({state.distributed_type}); launch with "
            "`optkit run --processes N`, torchrun or `accelerate launch --multi_gpu`, and set up Accelerate "
            "before anything else in the process calls it"
        )
    return state


def agree(value: Any) -> Any:
    """Rank 0's ``value`` on every rank: one decision (build or reuse, stop early) taken once."""
    if world_size() <= 1:
        return value
    import torch.distributed as dist

    box = [value]
    try:
        dist.broadcast_object_list(box, src=0)
    except (RuntimeError, OSError) as e:
        raise DistributedError(_peer_lost(e)) from None
    return box[0]


def finish() -> None:
    """Leave the process group once the last training step is done on every rank.

    Rank 0 then has the machine to itself (the other ranks exit): it gets back every CPU for
    torch, whose threads the launcher had split among the ranks, for the evaluation that follows.
    """
    import torch
    import torch.distributed as dist

    if world_size() <= 1:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if is_main() and not torch.cuda.is_available():
        torch.set_num_threads(available_cpus())


def peer_lost(exc: BaseException, what: str) -> DistributedError:
    """The error a rank raises when a collective fails: most often another rank died."""
    return DistributedError(f"{what}: {_peer_lost(exc)}")


def _peer_lost(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"rank {rank()} of {world_size()} lost contact with the other training processes ({first[:200]}); "
        "another rank most likely died (out of memory, killed, or an error it printed above). Nothing of "
        "this step was committed; run the same command again to resume"
    )


def launch(args: Sequence[str], processes: int, threads: int | None = None) -> int:
    """Run ``python -m optkit ARGS`` as ``processes`` ranks on this machine and return the run's exit status.

    Each rank gets torchrun's environment (rank, world size, a free local port) and ``threads``
    intra-op threads for torch (default: ``OMP_NUM_THREADS``, else 1, as torchrun does: N ranks
    each using every core would fight over them). When a rank fails, the others are stopped
    (SIGTERM, then SIGKILL) and the message says which rank failed and how; rank 0's own status
    (2 bad input, 1 failed gate, 130/143 interrupted) is returned when it is the one that failed.
    A SIGTERM to the launcher is passed on to every rank (a cancelled CI job stops them all).
    """
    base = dict(os.environ)
    per_rank = threads or _env_int("OMP_NUM_THREADS", 1)
    base.update(
        WORLD_SIZE=str(processes),
        LOCAL_WORLD_SIZE=str(processes),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        OMP_NUM_THREADS=str(per_rank),
        MKL_NUM_THREADS=str(per_rank),
    )
    procs: list[subprocess.Popen[bytes]] = []
    stopped: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        stopped.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        for r in range(processes):
            env = {**base, "RANK": str(r), "LOCAL_RANK": str(r)}
            procs.append(subprocess.Popen([sys.executable, "-m", "optkit", *args], env=env))
        return _watch(procs, stopped)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _watch(procs: list[subprocess.Popen[bytes]], stopped: list[int]) -> int:
    """Wait for every rank; at the first failure stop the rest and say which rank failed."""
    done: set[int] = set()
    try:
        while len(done) < len(procs):
            for r, p in enumerate(procs):
                if r not in done and (code := p.poll()) is not None:
                    done.add(r)
                    if code != 0 and not stopped:
                        return _fail(procs, r, code)
            time.sleep(0.05)
    except KeyboardInterrupt:  # Ctrl-C reached every rank too (same process group): let them stop cleanly
        for p in procs:
            _wait(p, _STOP_GRACE_S)
        return 130
    return 143 if stopped else 0


def _fail(procs: list[subprocess.Popen[bytes]], failed: int, code: int) -> int:
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    time.sleep(0.5)  # bad input fails every rank at once: let rank 0 give its own verdict first
    others = [p for r, p in enumerate(procs) if r != failed and p.poll() is None]
    if code > 0 and failed != 0 and procs[0].returncode == OptkitError.exit_code:
        failed, code = 0, OptkitError.exit_code  # the same bad input on every rank: rank 0 speaks for them
    for p in others:
        p.send_signal(signal.SIGTERM)
    for p in others:
        _wait(p, _STOP_GRACE_S)
    stopped = f"stopped the other {len(others)} running rank(s)" if others else "no other rank was running"
    if failed == 0 and code > 0:  # rank 0's own verdict (2 bad input, 1 gate or bug, 130/143 interrupted), said above
        print(f"optkit: rank 0 of {len(procs)} exited with status {code}; {stopped}", file=sys.stderr, flush=True)
        return code
    print(
        f"error: training process rank {failed} of {len(procs)} (pid {procs[failed].pid}) {how}; {stopped}. Only "
        "rank 0 commits cache entries, each one whole or not at all: nothing of the step that was running was "
        "kept. Run the same command again to resume",
        file=sys.stderr,
        flush=True,
    )
    return 1


def _wait(p: subprocess.Popen[bytes], grace: float) -> None:
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise DistributedError(f"environment variable {name}={raw!r} is not a whole number; unset or fix it") from None
