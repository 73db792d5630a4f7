#!/usr/bin/env python3
"""Label an archive of cases with IntegraBNER on Ray Data.

    python examples/ray_batch.py IN.jsonl OUT_DIR [--workers N] [--models DIR]

IN.jsonl has one case per line, as `integrabner predict` reads them:
{"id": ..., "text"?: ..., "image"?: path, "images"?: [paths]} (image paths
absolute, or relative to where the workers run). `integrabner ingest --cases`
writes such a file from OpenI. OUT_DIR receives JSONL files whose lines are
predict's objects, one per case (a case that cannot be analysed becomes
{"id": ..., "error": ...}); Ray writes them in blocks, so read them back by id.

Each worker is a Ray actor that loads the Labeler (the bundle verified) once
and then labels batch after batch with the interpreter lock released. The
same command runs on a laptop (a local Ray is started) and on a cluster:
set RAY_ADDRESS (or run it as a Ray job) and raise --workers.
"""

import argparse
import os

import pyarrow as pa
import ray


class LabelBatch:
    """One worker: a Labeler loaded once, applied to every batch it gets."""

    def __init__(self, models):
        from integrabner import Labeler

        self.labeler = Labeler(models)

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Arrow gives absent fields as None; a case line has no nulls.
        cases = [
            {key: value for key, value in row.items() if value is not None}
            for row in batch.to_pylist()
        ]
        return pa.Table.from_pylist(self.labeler.predict_batch(cases, errors="report"))


def label(source, out_dir, workers=2, models=None, batch_size=64):
    """Reads `source`, labels it on `workers` actors, writes `out_dir`."""
    # Reading and writing JSON are light I/O: they reserve no core, or on a
    # machine with as many cores as workers they would wait for each other.
    io = {"num_cpus": 0}
    cases = ray.data.read_json(source, lines=True, ray_remote_args=io)
    predictions = cases.map_batches(
        LabelBatch,
        fn_constructor_args=(models,),
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=workers,
        num_cpus=1,
        # One core per worker: the engine's matrix products would otherwise
        # start a thread per core in every worker.
        runtime_env={"env_vars": {"RAYON_NUM_THREADS": "1"}},
    )
    # Probabilities are f32; 15 decimals keep every digit JSON gave them.
    predictions.write_json(
        out_dir, ray_remote_args=io, double_precision=15
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="JSONL file (or directory of them) of cases")
    parser.add_argument("out_dir", help="directory for the predictions (JSONL files)")
    parser.add_argument("--workers", type=int, default=2, help="actors, each one core (default 2)")
    parser.add_argument(
        "--models",
        default=None,
        help="model bundle directory seen by the workers (default: the one installed with the package)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="cases per batch (default 64)")
    args = parser.parse_args()
    # RAY_ADDRESS, when set, names the cluster; otherwise a local Ray starts.
    ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    label(args.source, args.out_dir, args.workers, args.models, args.batch_size)


if __name__ == "__main__":
    main()
