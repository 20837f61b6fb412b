"""The inputs an artifact declares (read from the file, not from flags) and the shapes a run feeds it.

A fixed dimension is an int, a dynamic one ``None``. The runner fills dynamic dimensions the same way
(the first by the batch, the others by the sequence length), so a report can state the shapes that ran
and refuse a ``--seq-len`` or ``--batch`` that a fixed-shape artifact cannot take.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from edgeprune.errors import ConfigError, ModelError


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class ArtifactIO:
    """Declared inputs and the dominant weight dtype (fp32, fp16, int8) of one artifact."""

    inputs: tuple[InputSpec, ...]
    weight_dtype: str

    def fixed(self, axis: int) -> int | None:
        """The value every input fixes on ``axis`` (0 batch, 1 sequence), or None when any is dynamic."""
        vals = {i.shape[axis] for i in self.inputs if len(i.shape) > axis}
        if not vals or None in vals or len(vals) != 1:
            return None
        return int(next(iter(vals)))  # type: ignore[arg-type]


def onnx_io(path: str) -> ArtifactIO:
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ModelError(f"{path}: not a readable ONNX model ({e})") from None
    names = {i.name for i in model.graph.initializer}
    elem = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 9: "bool", 3: "int8", 2: "uint8", 11: "float64"}
    inputs = []
    for inp in model.graph.input:
        if inp.name in names:
            continue
        tt = inp.type.tensor_type
        dims = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
        inputs.append(InputSpec(inp.name, dims, elem.get(tt.elem_type, str(tt.elem_type))))
    kinds = {init.data_type for init in model.graph.initializer}
    dtype = "int8" if kinds & {2, 3} else "fp16" if 10 in kinds else "fp32"
    return ArtifactIO(tuple(inputs), dtype)


def tflite_io(path: str) -> ArtifactIO:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except Exception as e:
        raise ModelError(f"{path}: not a loadable TFLite model ({e})") from None
    from edgeprune.targets.remote_runner import signature_input_names

    names = signature_input_names(it)
    inputs = []
    for d in it.get_input_details():
        sig = [int(x) for x in d.get("shape_signature", d["shape"])]
        inputs.append(InputSpec(names.get(int(d["index"]), d["name"]), tuple(x if x > 0 else None for x in sig), getattr(d["dtype"], "__name__",
                                                                                           str(d["dtype"]))))
    kinds = {getattr(t["dtype"], "__name__", str(t["dtype"])) for t in it.get_tensor_details()}
    dtype = "int8" if kinds & {"int8", "uint8"} else "fp16" if "float16" in kinds else "fp32"
    return ArtifactIO(tuple(inputs), dtype)


def read_io(path: str | os.PathLike[str]) -> ArtifactIO:
    """Declared inputs and weight dtype, by the format's own reader (ONNX for an unknown suffix, as before)."""
    from edgeprune.formats import FORMATS, format_of

    fmt = format_of(path)
    return (fmt if fmt is not None and fmt.io_reader else FORMATS["onnx"]).io(path)


def resolve_shape(io: ArtifactIO, artifact: str, batch: int | None, seq_len: int | None,
                  default_batch: int, default_seq: int) -> tuple[int, int]:
    """(batch, seq_len) to run: the artifact's fixed values, else the request, else the defaults.

    A request that a fixed dimension cannot take is a ConfigError naming the shape the artifact has.
    """
    out = []
    for axis, want, default, flag in ((0, batch, default_batch, "--batch"), (1, seq_len, default_seq, "--seq-len")):
        fixed = io.fixed(axis)
        if fixed is not None and want is not None and want != fixed:
            shapes = ", ".join(f"{i.name} {list_shape(i.shape)}" for i in io.inputs)
            raise ConfigError(f"{flag} {want}: {os.path.basename(artifact)} has fixed input shapes ({shapes}); "
                              f"it only runs with {flag} {fixed} (re-export it with --seq-len {want} instead)")
        out.append(fixed if fixed is not None else (want if want is not None else default))
    return int(out[0]), int(out[1])


def fed_shapes(io: ArtifactIO, batch: int, seq_len: int) -> dict[str, list[int]]:
    """The concrete shape of each input a run with (batch, seq_len) feeds (the runner's rule)."""
    return {i.name: [d if d is not None else (batch if k == 0 else seq_len) for k, d in enumerate(i.shape)]
            for i in io.inputs}


def list_shape(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def shape_key(shapes: dict[str, list[int]]) -> list[list[int]]:
    """The distinct input shapes, without names (exporters name, and sometimes drop, the same inputs
    differently: an ONNX export feeds token_type_ids where a TFLite one may not)."""
    return [list(s) for s in sorted({tuple(s) for s in shapes.values()})]
