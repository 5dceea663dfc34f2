"""Batched logits from a torch folder or an ONNX file, with the same tokenisation for both."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optkit.errors import EvaluationError
from optkit.evaluate.providers import PROVIDER_NAMES, ort_provider_name
from optkit.provider_names import session_options

__all__ = [
    "PROVIDER_NAMES",
    "create_session",
    "onnx_forward",
    "onnx_logits",
    "ort_feed",
    "torch_forward",
    "torch_logits",
]


def create_session(
    path: Path,
    provider: str = "cpu",
    threads: int | None = None,
    *,
    profile_prefix: Path | None = None,
    options: dict[str, str] | None = None,
) -> Any:
    """An ORT session on one provider (CPU as the explicit fallback for non-CPU providers).

    Sequential execution and ``inter_op=1`` so ``threads`` is the whole story of parallelism.
    A corrupt or truncated file becomes an ``EvaluationError`` naming the file. With
    ``profile_prefix`` the session records a profile (used to see where each node ran). The
    provider gets the provider table's defaults merged with ``options`` (see ``session_options``).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    name = ort_provider_name(provider)
    provider_opts = session_options(provider, options, threads)
    requested: Any = (name, provider_opts) if provider_opts else name
    providers = [requested] if name == "CPUExecutionProvider" else [requested, "CPUExecutionProvider"]
    if not Path(path).is_file():
        raise EvaluationError(f"ONNX file {str(path)!r} does not exist")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # ORT raises its own Fail/InvalidProtobuf/... types
        raise EvaluationError(
            f"ONNX file {str(path)!r} could not be loaded by ONNX Runtime ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0][:300]}). The file may be truncated or corrupt; delete it "
            f"(or run with --force) to rebuild it"
        ) from None


def ort_feed(session: Any, encoding: dict[str, Any]) -> dict[str, Any]:
    """Map tokenizer output (numpy) to the session's inputs, as int64 (float32 where the input is a float
    tensor, such as an image's pixel_values); absent token_type_ids become zeros."""
    import numpy as np

    feed = {}
    for inp in session.get_inputs():
        if inp.name in encoding:
            dtype = np.float32 if inp.type == "tensor(float)" else np.int64
            feed[inp.name] = np.asarray(encoding[inp.name], dtype=dtype)
        elif inp.name == "token_type_ids":
            feed[inp.name] = np.zeros_like(np.asarray(encoding["input_ids"]), dtype=np.int64)
        else:
            raise EvaluationError(f"the ONNX model expects an input {inp.name!r} that the tokenizer does not produce")
    return feed


def onnx_forward(session: Any) -> Callable[[dict[str, Any]], list[Any]]:
    """A numpy encoding to every output of an ORT session (a structured task's ``infer`` calls it)."""
    return lambda enc: session.run(None, ort_feed(session, enc))


def torch_forward(model: Any) -> Callable[[dict[str, Any]], list[Any]]:
    """A numpy encoding to every output of a torch model, as numpy on the host, in the model's output
    order (logits; or start and end logits): the same contract as ``onnx_forward``."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    model.eval()

    def forward(enc: dict[str, Any]) -> list[Any]:
        feed = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)).to(device) for k, v in enc.items()}
        with torch.inference_mode():
            out = model(**feed)
        return [t.float().cpu().numpy() for t in out.to_tuple()]

    return forward


def onnx_logits(
    session: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> Any:
    """Logits of an ORT session over ``texts``, batch by batch."""
    return _batched_logits(
        lambda enc: session.run(None, ort_feed(session, enc))[0],
        "np",
        tokenizer,
        texts,
        max_length,
        batch_size,
        on_batch,
    )


def torch_logits(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    *,
    by_length: bool = False,
) -> Any:
    """Logits of a torch model over ``texts``, with the same batching and tokenisation, on whatever device
    the model sits (a teacher on a GPU); returned on the host.

    ``by_length`` batches rows of similar length together (less padding) and returns the logits in
    the original order: padding does not change a BERT-style model's logits, the attention mask hides it.
    """
    import torch

    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        return _batched_logits(
            lambda enc: model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy(),
            "pt",
            tokenizer,
            texts,
            max_length,
            batch_size,
            on_batch,
            by_length,
        )


def _batched_logits(
    forward: Callable[[dict[str, Any]], Any],
    tensors: str,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
    by_length: bool = False,
) -> Any:
    """The one batched forward loop: every place that needs outputs over many texts comes through here."""
    import numpy as np

    order = list(range(len(texts)))
    if by_length:
        lengths = [len(x) for x in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
        order.sort(key=lengths.__getitem__)
    out = []
    for start in range(0, len(order), batch_size):
        chunk = [texts[i] for i in order[start : start + batch_size]]
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors=tensors)
        out.append(forward(dict(enc)))
        if on_batch:
            on_batch(len(chunk))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    stacked = np.concatenate(out)
    result = np.empty_like(stacked)
    result[order] = stacked
    return result
