"""A Plan as the workers keep it (PlanManifest), and back: how a restarted coordinator recovers plans."""

from __future__ import annotations

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.plans import Mode, Plan, Signature, StageSpec, StateSpec, TensorSpec
from edgeswarm.security import routes


def manifest_of(plan: Plan) -> worker_pb2.PlanManifest:
    """The plan as a worker keeps it, bound to this coordinator (security.routes.sign_plan)."""
    return routes.sign_plan(_manifest(plan))


def _manifest(plan: Plan) -> worker_pb2.PlanManifest:
    return worker_pb2.PlanManifest(
        model=plan.model,
        version=plan.version,
        mode=plan.mode,
        batch_max=plan.batch_max,
        batch_delay_ms=1000 * plan.batch_delay_s,
        inputs=[_tensor(t) for t in plan.signature.inputs],
        outputs=[_tensor(t) for t in plan.signature.outputs],
        stages=[
            worker_pb2.StageManifest(
                index=s.index,
                sha256=s.sha256,
                size=s.size,
                inputs=s.inputs,
                outputs=s.outputs,
                carry=s.carry,
                workers=s.workers,
                group=s.group,
            )
            for s in plan.stages
        ],
        states=[worker_pb2.StatePair(output=s.output, input=s.input, axis=s.axis) for s in plan.states],
        tokenizer=plan.tokenizer,
    )


def plan_of(manifest: worker_pb2.PlanManifest) -> Plan:
    return Plan(
        model=manifest.model,
        version=manifest.version,
        mode=Mode.parse(manifest.mode, "a reported plan's mode"),
        signature=Signature(
            tuple(_spec(t) for t in manifest.inputs), tuple(_spec(t) for t in manifest.outputs)
        ),
        stages=tuple(
            StageSpec(
                s.index,
                s.sha256,
                s.size,
                tuple(s.inputs),
                tuple(s.outputs),
                tuple(s.carry),
                tuple(s.workers),
                s.group,
            )
            for s in manifest.stages
        ),
        batch_max=manifest.batch_max,
        batch_delay_s=manifest.batch_delay_ms / 1000,
        states=tuple(StateSpec(s.output, s.input, s.axis) for s in manifest.states),
        tokenizer=manifest.tokenizer,
    )


def _tensor(spec: TensorSpec) -> worker_pb2.TensorSpec:
    return worker_pb2.TensorSpec(name=spec.name, datatype=spec.datatype, shape=spec.shape)


def _spec(tensor: worker_pb2.TensorSpec) -> TensorSpec:
    return TensorSpec(tensor.name, tensor.datatype, tuple(tensor.shape))
