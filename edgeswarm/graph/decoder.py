"""Decoders: models some of whose outputs feed their own inputs at the next step. Pure.

A state pair is such an output and input (a layer's key/value cache: `present.0.key` becomes
`past_key_values.0.key`), with the axis it grows along at each step. Pairs are recognised by the names
exporters give them, or declared (`--state OUTPUT=INPUT`); each is checked against the graph: both
names exist, their element types and ranks agree, and their declared shapes differ on one axis alone.
A state stays on the worker that makes it, so the stage that writes a state must be the one that reads it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from edgeswarm.errors import InvalidRequest, PlacementError
from edgeswarm.graph.partition import StagePart

TOKEN_INPUT = "input_ids"
ATTENTION_MASK, POSITION_IDS = "attention_mask", "position_ids"
POSITION_INPUTS = (ATTENTION_MASK, POSITION_IDS)
LOGITS = "logits"


@dataclass(frozen=True)
class StatePair:
    output: str  # the graph output made at a step (`present.0.key`)
    input: str  # the graph input it is at the next (`past_key_values.0.key`)
    axis: int  # the sequence axis: the one along which the output is longer than the input


def past_names(output: str) -> tuple[str, ...]:
    """The inputs an output of this name feeds by the exporters' conventions, in order of preference:
    `present.X` feeds `past_key_values.X` or `past.X`, `present_X` feeds `past_X`."""
    if output.startswith("present."):
        rest = output.removeprefix("present.")
        return (f"past_key_values.{rest}", f"past.{rest}")
    if output.startswith("present_"):
        return (f"past_{output.removeprefix('present_')}",)
    return ()


def _inputs(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    weights = {i.name for i in model.graph.initializer}
    return {v.name: v for v in model.graph.input if v.name not in weights}


def _named_pairs(model: onnx.ModelProto) -> dict[str, str]:
    inputs = _inputs(model)
    named = {}
    for value in model.graph.output:
        found = [name for name in past_names(value.name) if name in inputs]
        if found:
            named[value.name] = found[0]
    return named


def is_decoder(model: onnx.ModelProto) -> bool:
    """Whether an output feeds an input by the exporters' naming (see `past_names`)."""
    return bool(_named_pairs(model))


def state_pairs(model: onnx.ModelProto, declared: Mapping[str, str] | None = None) -> tuple[StatePair, ...]:
    """The model's state pairs, in the order of their outputs: those its names tell, and `declared`
    OUTPUT -> INPUT pairs, which take the place of what the names tell for the same output.

    InvalidRequest naming the pair when a name is missing, the types or ranks differ, two outputs feed
    one input, or the shapes do not tell the sequence axis.
    """
    pairs = {**_named_pairs(model), **(declared or {})}
    outputs = {v.name: v for v in model.graph.output}
    inputs = _inputs(model)
    order = {name: position for position, name in enumerate(outputs)}
    checked = [_checked(model, output, input_, outputs, inputs) for output, input_ in pairs.items()]
    fed: dict[str, str] = {}
    for pair in checked:
        if pair.input in fed:
            raise InvalidRequest(
                f"state pairs {fed[pair.input]} -> {pair.input} and {pair.output} -> {pair.input}: "
                f"two outputs cannot feed one input"
            )
        fed[pair.input] = pair.output
    return tuple(sorted(checked, key=lambda p: order[p.output]))


def _checked(
    model: onnx.ModelProto,
    output: str,
    input_: str,
    outputs: Mapping[str, onnx.ValueInfoProto],
    inputs: Mapping[str, onnx.ValueInfoProto],
) -> StatePair:
    pair = f"state pair {output} -> {input_}"
    if output not in outputs:
        raise InvalidRequest(f"{pair}: the model has no output {output!r}")
    if input_ not in inputs:
        weight = any(i.name == input_ for i in model.graph.initializer)
        raise InvalidRequest(
            f"{pair}: {input_!r} is a weight, not an input"
            if weight
            else f"{pair}: the model has no input {input_!r}"
        )
    made, read = outputs[output].type.tensor_type, inputs[input_].type.tensor_type
    if made.elem_type != read.elem_type:
        raise InvalidRequest(
            f"{pair}: the output is {_type_name(made.elem_type)}, the input {_type_name(read.elem_type)}"
        )
    for name, tensor in ((output, made), (input_, read)):
        if not tensor.HasField("shape"):
            raise InvalidRequest(
                f"{pair}: the model declares no shape for {name!r}, so the sequence axis cannot be told: "
                "declare the shapes of both"
            )
    made_dims, read_dims = list(made.shape.dim), list(read.shape.dim)
    if len(made_dims) != len(read_dims):
        raise InvalidRequest(f"{pair}: the output has rank {len(made_dims)}, the input {len(read_dims)}")
    differ = [axis for axis, (a, b) in enumerate(zip(made_dims, read_dims, strict=True)) if not _same(a, b)]
    if len(differ) != 1:
        shown = f"differ on axes {differ}" if differ else "are the same"
        raise InvalidRequest(
            f"{pair}: the shapes the model declares ({_shape(made_dims)} and {_shape(read_dims)}) {shown}, "
            "so they do not tell which axis the state grows along: declare shapes that differ on the "
            "sequence axis alone (such as 'past_sequence' in the input and 'total_sequence' in the output)"
        )
    return StatePair(output, input_, differ[0])


def _same(a: onnx.TensorShapeProto.Dimension, b: onnx.TensorShapeProto.Dimension) -> bool:
    if a.HasField("dim_value") and b.HasField("dim_value"):
        return a.dim_value == b.dim_value
    return bool(a.dim_param) and a.dim_param == b.dim_param


def _shape(dims: Sequence[onnx.TensorShapeProto.Dimension]) -> str:
    shown = (str(d.dim_value) if d.HasField("dim_value") else d.dim_param or "?" for d in dims)
    return f"[{', '.join(shown)}]"


def _type_name(elem_type: int) -> str:
    return str(onnx.TensorProto.DataType.Name(elem_type))


def empty_states(model: onnx.ModelProto, pairs: Sequence[StatePair], batch: int = 1) -> dict[str, np.ndarray]:
    """The states before the first step: for each pair's input, an array of no length along its axis.

    Its other dimensions are the input's declared sizes, with `batch` for a symbolic batch dimension:
    one named like a batch, or the symbol on the first axis of a graph input that is not a state.
    InvalidRequest naming any other symbolic dimension, whose size cannot be told.
    """
    inputs = _inputs(model)
    states = {p.input for p in pairs}
    batch_symbols = {
        v.type.tensor_type.shape.dim[0].dim_param
        for name, v in inputs.items()
        if name not in states and v.type.tensor_type.shape.dim
    } - {""}
    empty = {}
    for pair in pairs:
        if pair.input not in inputs:
            raise InvalidRequest(
                f"state pair {pair.output} -> {pair.input}: the model has no input {pair.input!r}"
            )
        tensor = inputs[pair.input].type.tensor_type
        dims = []
        for axis, dim in enumerate(tensor.shape.dim):
            if axis == pair.axis:
                dims.append(0)
            elif dim.HasField("dim_value"):
                dims.append(dim.dim_value)
            elif dim.dim_param and (dim.dim_param in batch_symbols or "batch" in dim.dim_param.lower()):
                dims.append(batch)
            else:
                raise InvalidRequest(
                    f"state input {pair.input!r}: dimension {axis} ({dim.dim_param or 'unnamed'}) is neither "
                    "a number, the batch nor the sequence axis, so its first value cannot be made: "
                    "declare its size"
                )
        empty[pair.input] = np.zeros(dims, helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    return empty


def check_pairs_in_stages(
    stage_io: Sequence[tuple[Collection[str], Collection[str]]], pairs: Sequence[StatePair]
) -> None:
    """PlacementError unless each pair's input is read only by the stages that produce its output,
    and each of those reads it. `stage_io` is, per stage, the tensors it reads and those it produces
    (its graph inputs and outputs among them)."""
    for pair in pairs:
        readers = {k for k, (reads, _) in enumerate(stage_io) if pair.input in reads}
        makers = {k for k, (_, makes) in enumerate(stage_io) if pair.output in makes}
        where = f"state pair {pair.output} -> {pair.input}"
        if not makers:
            raise PlacementError(f"{where}: no stage produces {pair.output!r}")
        if readers != makers:
            made, read = _stages(makers, "produces", "produce"), _stages(readers, "reads", "read")
            raise PlacementError(
                f"{where}: {made} {pair.output!r} but {read} {pair.input!r}; a state stays on the worker "
                "that makes it, so the stage that writes it must be the one that reads it: cut elsewhere"
            )


def _stages(indices: set[int], one: str, many: str) -> str:
    if not indices:
        return f"no stage {one}"
    if len(indices) == 1:
        return f"stage {next(iter(indices))} {one}"
    return f"stages {', '.join(map(str, sorted(indices)))} {many}"


def check_pairs_in_split(parts: Sequence[StagePart], pairs: Sequence[StatePair]) -> None:
    """`check_pairs_in_stages` for the stages `partition.split` made."""
    check_pairs_in_stages([(part.inputs, part.outputs) for part in parts], pairs)


def parse_states(specs: Sequence[str]) -> dict[str, str]:
    """`OUTPUT=INPUT` options (`--state`) as a mapping; InvalidRequest naming one that is malformed."""
    declared: dict[str, str] = {}
    for spec in specs:
        output, sep, input_ = spec.partition("=")
        if not sep or not output or not input_ or output in declared:
            raise InvalidRequest(f"--state {spec!r}: expected OUTPUT=INPUT, each output once")
        declared[output] = input_
    return declared
