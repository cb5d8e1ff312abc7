"""Data-parallel training with ``tf.distribute``: one host (mirrored) or several (multi_worker).

How the pieces fit:

- ``make_strategy(name)`` builds the strategy; build and compile the model inside
  ``scope(strategy)``, then hand both to ``training.fit(..., strategy=strategy)``.
- Every batch of the training stream is a *global* batch. ``distribute_training_data``
  cuts each global batch into one slice per replica in order, so replicas see
  exactly the examples a single device would see in that step, and the loss
  (each replica's mean scaled by 1 / replicas, gradients summed) and the
  metrics (confusion counts summed across replicas) equal the single-device ones.
- Only the chief writes the run folder; other workers write to a temporary
  folder (``writable_dir``) that is removed afterwards. They must still *save*,
  because saving reads distributed variables, which every worker has to do together.

Only the TensorFlow backend uses this module; on JAX, Keras' own distribution
API does the same job (see docs/distributed.md). TensorFlow is imported lazily
so that importing ``mitoseg_tf.training`` never needs it.
"""

import contextlib
import json
import os
import shutil
import tempfile

STRATEGIES = ("none", "mirrored", "multi_worker")

_TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


def check_strategy_name(name):
    """Raise ``ValueError`` unless ``name`` is one of ``STRATEGIES``."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def read_tf_config(environ=None):
    """The parsed and validated ``TF_CONFIG`` that ``multi_worker`` needs.

    Raises ``ValueError`` saying what is wrong when it is missing, not JSON, or
    does not name this task inside the cluster.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise ValueError(
            "strategy multi_worker needs the TF_CONFIG environment variable describing the cluster "
            f"and this process' task, e.g. TF_CONFIG='{_TF_CONFIG_EXAMPLE}'; it is not set."
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}); expected e.g. {_TF_CONFIG_EXAMPLE}.") from None
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("cluster"), dict)
        or not isinstance(config.get("task"), dict)
    ):
        raise ValueError(
            f"TF_CONFIG must be an object with 'cluster' and 'task' objects, e.g. {_TF_CONFIG_EXAMPLE}; got {raw!r}."
        )
    cluster, task = config["cluster"], config["task"]
    for role, addresses in cluster.items():
        if role not in ("chief", "worker", "evaluator", "ps"):
            raise ValueError(f"TF_CONFIG cluster has an unknown role {role!r}; accepted: chief, worker.")
        if role in ("evaluator", "ps"):
            raise ValueError(
                f"TF_CONFIG role {role!r} is not used by multi_worker data parallelism; use chief and worker."
            )
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)
        ):
            raise ValueError(
                f"TF_CONFIG cluster[{role!r}] must be a non-empty list of 'host:port' strings; got {addresses!r}."
            )
    if "worker" not in cluster and "chief" not in cluster:
        raise ValueError(f"TF_CONFIG cluster lists no 'worker' (or 'chief'); e.g. {_TF_CONFIG_EXAMPLE}.")
    role, index = task.get("type"), task.get("index")
    if role not in cluster:
        raise ValueError(f"TF_CONFIG task type {role!r} is not a role of the cluster ({', '.join(cluster)}).")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[role]):
        raise ValueError(f"TF_CONFIG task index {index!r} is not in 0..{len(cluster[role]) - 1} for role {role!r}.")
    return config


def make_strategy(name):
    """``None`` for ``none``; otherwise the ``tf.distribute`` strategy.

    ``mirrored`` uses every local GPU, or every logical CPU device when there is
    no GPU. ``multi_worker`` reads the cluster from ``TF_CONFIG`` (validated
    first) and must be created before TensorFlow runs any op in this process.
    """
    check_strategy_name(name)
    if name == "none":
        return None
    if name == "multi_worker":
        read_tf_config()
    import tensorflow as tf

    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.MultiWorkerMirroredStrategy()


def scope(strategy):
    """``strategy.scope()``, or a no-op context for ``None``: build and compile models inside it."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def num_replicas(strategy):
    """Replicas that share each global batch (1 without a strategy)."""
    return 1 if strategy is None else strategy.num_replicas_in_sync


def worker_count(strategy):
    """Processes taking part (1 unless multi_worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(role, [])) for role in ("chief", "worker")) or 1


def worker_index(strategy):
    """This process' place among the workers: chief (if any) first, then workers in order."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0
    spec = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return 0
    return resolver.task_id + (1 if "chief" in spec else 0)


def is_chief(strategy):
    """Whether this process writes the run folder: always without multi_worker, else the chief
    (or worker 0 when the cluster has no chief)."""
    return worker_index(strategy) == 0


def check_global_batch(batch_size, strategy):
    """Raise ``ValueError`` unless the global batch splits evenly over the replicas."""
    replicas = num_replicas(strategy)
    if batch_size is not None and batch_size % replicas:
        raise ValueError(
            f"The global batch size {batch_size} does not split evenly over {replicas} replicas; "
            f"use a multiple of {replicas} (e.g. {replicas * max(1, round(batch_size / replicas))})."
        )


def global_batch_size(dataset):
    """The static batch dimension of a batched ``tf.data`` dataset (None when unknown)."""
    import tensorflow as tf

    first = tf.nest.flatten(dataset.element_spec)[0]
    return first.shape[0] if first.shape.rank else None


def distribute_training_data(dataset, strategy):
    """A distributed dataset that gives replica ``r`` slice ``r`` of every global batch.

    ``dataset`` yields global batches (static batch size, e.g. ``drop_remainder``).
    Each worker builds the same seeded stream and keeps its own replicas' slices,
    so no example is seen twice and the union over replicas of a step is exactly
    that step's global batch. (Keras' default would re-shard or re-iterate the
    stream; an infinite seeded stream is position-sensitive, see ``fit``.)
    """
    import tensorflow as tf

    batch = global_batch_size(dataset)
    if batch is None:
        raise ValueError(
            "Distributed training needs batches of a fixed size (batch with drop_remainder=True); "
            f"the dataset's batch dimension is unknown: {dataset.element_spec}."
        )
    check_global_batch(batch, strategy)
    workers, index = worker_count(strategy), worker_index(strategy)
    per_replica = batch // strategy.num_replicas_in_sync
    if batch % workers:
        raise ValueError(f"The global batch size {batch} does not split evenly over {workers} workers.")

    def per_worker(context):
        if context.num_input_pipelines != workers:
            raise ValueError(f"Expected {workers} input pipelines (one per worker), got {context.num_input_pipelines}.")
        local = dataset
        if workers > 1:
            local = local.rebatch(batch // workers).shard(workers, index)
        local = local.rebatch(per_replica)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return local.with_options(options)

    return strategy.distribute_datasets_from_function(per_worker)


def shard_by_data(dataset):
    """``dataset`` with DATA auto-sharding (each worker keeps every n-th element), for
    validation sets that are not file-based (Keras would otherwise try FILE and warn)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _zeros_like_spec(dataset):
    import tensorflow as tf

    return tf.nest.map_structure(lambda s: tf.zeros([d or 1 for d in s.shape], s.dtype), dataset.element_spec)


def _with_leading_axis(step):
    import tensorflow as tf

    def step_with_vector_logs(data):
        logs = step(data)
        return tf.nest.map_structure(lambda v: tf.reshape(v, (1,)) if v.shape.rank == 0 else v, logs)

    return step_with_vector_logs


@contextlib.contextmanager
def keras_fit_fixes(model, dataset, strategy):
    """Work around two behaviours of Keras 3's ``fit`` under a strategy, for the duration of a fit.

    1. Keras first iterates the training data once just to trace shapes, then
       iterates it again to train. A seeded shuffle reshuffles on every new
       iteration, so training would see another stream than without a strategy
       (or a resumed run). The model is built from zeros of the data's shapes instead.
    2. Under MultiWorkerMirroredStrategy Keras reduces each scalar log with
       ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars
       (tensorflow/tensorflow#72388); the train and test steps return them as
       1-vectors, which that reduction averages back to scalars.
    """
    zeros = _zeros_like_spec(dataset)
    original = model._maybe_symbolic_build

    def build(iterator=None, data_batch=None):
        return original(data_batch=zeros if data_batch is None else data_batch)

    patched = {"_maybe_symbolic_build": build}
    if worker_count(strategy) > 1:
        patched["train_step"] = _with_leading_axis(model.train_step)
        patched["test_step"] = _with_leading_axis(model.test_step)
    for name, value in patched.items():
        object.__setattr__(model, name, value)
    try:
        yield
    finally:
        for name in patched:
            object.__delattr__(model, name)


@contextlib.contextmanager
def writable_dir(run_dir, strategy):
    """``run_dir`` on the chief; a temporary folder (removed on exit) on other workers."""
    if run_dir is None or is_chief(strategy):
        yield run_dir
        return
    tmp = tempfile.mkdtemp(prefix=f"mitoseg-worker{worker_index(strategy)}-")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
