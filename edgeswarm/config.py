"""Settings: a TOML file, then environment variables, then command-line flags (the last wins)."""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edgeswarm.channels import DEFAULT_MAX_MESSAGE_BYTES


class Optimization(StrEnum):
    """ONNX Runtime's graph optimization levels. Outputs are bit-exact across a split only at "basic" (the
    default) or "disable": higher levels fuse differently in a stage than in the whole graph."""

    DISABLE = "disable"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class _Settings(BaseSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


class WorkerSettings(_Settings):
    model_config = SettingsConfigDict(env_prefix="EDGESWARM_WORKER_", extra="forbid")

    listen: str = "0.0.0.0:50061"
    # Address mDNS binds to; empty: the listen address, or the default route's interface.
    interface: str = ""
    fleet: str = "default"
    name: str = socket.gethostname()
    cache_dir: Path = Path.home() / ".cache" / "edgeswarm"
    # Where the worker keeps its fleet key and certificate, once it has joined.
    state_dir: Path = Path.home() / ".local" / "state" / "edgeswarm-worker"
    # A join token (edgeswarm token create --role worker): used once, to join.
    join: str = ""
    # Plaintext, no certificates: development on a loopback address only.
    insecure: bool = False
    # Largest size of the shard cache in bytes; least recently used shards not loaded are deleted
    # beyond it. 0: no limit.
    cache_max_bytes: int = 0
    # Bytes of model weights the planner may put on this worker; 0: the memory available.
    memory_limit: int = 0
    # ONNX Runtime intra-op threads per session; 0 lets the worker use every core.
    threads: int = 0
    # Stage runs at once (the pool threads). When every one holds a run past its deadline that ONNX
    # Runtime has not stopped yet (one long kernel), health says NOT_SERVING until a thread is free.
    concurrency: int = 4
    # Bytes of generation state (KV caches) this worker keeps for sessions in all, and seconds a
    # session may sit idle before its state is dropped.
    session_memory: int = 1024 * 1024 * 1024
    session_idle: float = 300.0
    # Longest one Profile may take, whatever its caller's deadline: rounds stop early as it nears,
    # a run still going at it is stopped.
    profile_limit: float = 120.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # HOST:PORT for Prometheus /metrics; empty: none.
    metrics: str = ""
    # Graph optimization level for ONNX Runtime: disable, basic, extended or all (checked at start).
    optimization: Optimization = Optimization.BASIC
    # On SIGTERM or a drain request: seconds between turning NOT_SERVING (the coordinator routes
    # around) and refusing new requests, and the longest wait for requests in flight to finish.
    drain_notice: float = 1.0
    drain_grace: float = 30.0
    # MQTT broker HOST:PORT for presence and telemetry; empty: none.
    mqtt: str = ""
    telemetry_interval: float = 2.0
    # Seconds between calibrations after the first (skipped while requests are in flight); the
    # figure reported is the median of the last three, so one disturbed reading does not count.
    # 0: calibrate at start only.
    recalibrate_interval: float = 300.0


class CoordinatorSettings(_Settings):
    model_config = SettingsConfigDict(env_prefix="EDGESWARM_COORDINATOR_", extra="forbid")

    listen: str = "0.0.0.0:50051"
    # Address mDNS browses on; empty: the listen address, or the default route's interface.
    interface: str = ""
    fleet: str = "default"
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Plaintext, no CA, no tokens: development on a loopback address only.
    insecure: bool = False
    # Where the coordinator keeps its fleet CA, tokens (pki/, tokens.json, admin.credentials) and
    # its model store (store/).
    state_dir: Path = Path.home() / ".local" / "state" / "edgeswarm"
    # Most bytes the model store holds (0: no limit): room for a new model is made by deleting
    # undeployed models, least recently used first; a deploy that cannot fit is refused up front.
    store_max_bytes: int = 64 * 1024 * 1024 * 1024
    # Most bytes of a model's .onnx file, which is parsed in memory (a larger model keeps its weights
    # in external data files, streamed to disk and cut from there).
    max_model_bytes: int = 2 * 1024 * 1024 * 1024
    # Bytes that deploy uploads in progress may announce in all; a further one is refused until
    # they finish (each is written into the store as it arrives).
    max_upload_bytes: int = 16 * 1024 * 1024 * 1024
    # HOST:PORT for Prometheus /metrics; empty: none.
    metrics: str = ""
    # HOST:PORT for the OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions):
    # HTTPS with the coordinator's fleet certificate and client tokens, plain HTTP with --insecure
    # (loopback only). Empty: none.
    http: str = ""
    # Deadline given to a request that came without one, in seconds.
    default_timeout: float = 30.0
    # First ban of a failed worker; it doubles on each further failure, up to ban_max.
    ban_initial: float = 0.5
    ban_max: float = 30.0
    # Wait between attempts to re-open a worker's health stream.
    health_retry: float = 0.2
    # Each worker's health is also checked every probe_interval seconds; a check that gets no answer
    # within probe_timeout marks the worker lost (a frozen process or a cut link sends no error).
    probe_interval: float = 0.5
    probe_timeout: float = 1.0
    # Routing prefers the workers of a stage that answered fastest lately (a slowed link shows at
    # once); a worker left alone for being slow is tried again as its estimate decays with this
    # time constant, in seconds.
    latency_decay: float = 2.0
    # An attempt that takes `attempt_factor` times the longest any request of the model has taken (at
    # least `attempt_floor` seconds) counts as stuck: its worker is banned and the request retried on
    # another route. 0: an attempt may use the request's whole time.
    attempt_factor: float = 10.0
    # Generations run as a ring (the last stage sends each next step straight to the first); false:
    # each token is answered back along the route and the next step sent from here.
    ring: bool = True
    attempt_floor: float = 2.0
    # Seconds between re-reading each worker's description (its calibration, memory limit): a model
    # placed by measurement is re-planned when a worker's calibration moved by more than 30%.
    # 0: only when a worker (re)joins.
    describe_interval: float = 10.0
    # Up to this many live workers, the link between every pair is timed when a model is planned
    # (n(n-1)/2 timings, one at a time); beyond, only the pairs that a plan makes pipeline
    # neighbours, planning again with what they show.
    pair_workers: int = 8
    # A worker down this long has its work re-planned onto the others.
    replan_grace: float = 10.0
    # How often deployed models are checked against the live fleet (re-plan, or use a worker back).
    heal_interval: float = 1.0
    # After a start, a request for a model not yet known waits this long for the workers to report
    # the plans they hold (a restarted coordinator serves without a redeploy).
    recovery_window: float = 5.0
    # MQTT broker HOST:PORT for fleet presence and events; empty: none.
    mqtt: str = ""


S = TypeVar("S", bound=_Settings)


def load(cls: type[S], config_file: str | Path | None, flags: dict[str, Any]) -> S:
    """Settings of `cls` from `config_file` (TOML), the environment and the flags that were given."""
    given = {k: v for k, v in flags.items() if v is not None}
    if config_file is None:
        return cls(**given)

    class FromFile(cls):  # type: ignore[valid-type,misc]
        model_config = SettingsConfigDict(toml_file=config_file, title=cls.__name__)

    return FromFile(**given)
