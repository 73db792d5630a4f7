#!/usr/bin/env python3
"""Corpus-scale throughput on the same OpenI reports, one run, one table.

Run by scripts/bench-corpus, which builds the release CLI and wheel and
passes the interpreters and paths below; see BENCHMARKS.md. Every figure is
reports per second of wall time over the whole set, models loaded before
the clock starts (the CLI's start-up, a fraction of a second, is included
and said so); peak memory is the process's maximum resident set.

usage: throughput.py CASES.jsonl --cli BIN [--medspacy-python PY] [--rules FILE]
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time


def run_cli(cli, cases, *args, threads=1):
    """Reports/s and peak MiB of `integrabner predict CASES ARGS`."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", cli, "predict", cases, "-o", out.name, *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
        n = sum(1 for _ in open(out.name))
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return n / seconds, peak_kib / 1024


def rules_bundle(directory):
    """A bundle of the shipped rules alone in `directory` (its manifest
    listing only them): a Labeler over it is the rule labeler."""
    import shutil

    manifest = json.load(open("models/manifest.json"))
    manifest["files"] = [f for f in manifest["files"] if f["path"].startswith("rules/")]
    shutil.copytree("models/rules", os.path.join(directory, "rules"))
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return directory


def python_batch(cases_path, models=None):
    """Reports/s of Labeler.predict_batch in this process, and its peak MiB
    (the process's whole life, so the largest of the calls so far)."""
    from integrabner import Labeler

    labeler = Labeler(models)
    cases = [json.loads(line) for line in open(cases_path)]
    labeler.predict_batch(cases[:20])  # warm-up
    start = time.perf_counter()
    labeler.predict_batch(cases)
    seconds = time.perf_counter() - start
    return len(cases) / seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_peaks(stop, peaks):
    """Until `stop` is set, the largest resident set (MiB) seen of each
    process whose command line names a Ray map worker, sampled from /proc."""
    while not stop.wait(0.2):
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"MapWorker" not in f.read():
                        continue
                with open(f"/proc/{pid}/status") as f:
                    rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                continue
            peaks[pid] = max(peaks.get(pid, 0), rss / 1024)


def ray_workers(cases_path, workers, models=None):
    """Reports/s of examples/ray_batch.py's pipeline on a local Ray, and the
    largest peak resident set of its workers (MiB)."""
    import ray

    # Loaded from its file, not imported by name, so that Ray ships the
    # worker class by value (the workers could not import it).
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "ray_batch.py")
    spec = importlib.util.spec_from_file_location("ray_batch", path)
    ray_batch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ray_batch)

    ray.init(num_cpus=workers, log_to_driver=False, include_dashboard=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        stop, peaks = threading.Event(), {}
        sampler = threading.Thread(target=worker_peaks, args=(stop, peaks))
        sampler.start()
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            ray_batch.label(cases_path, out, workers=workers, models=models)
            seconds = time.perf_counter() - start
            n = sum(1 for f in os.listdir(out) for _ in open(os.path.join(out, f)))
        stop.set()
        sampler.join()
    finally:
        ray.shutdown()
    return n / seconds, max(peaks.values(), default=None)


MEDSPACY = r'''
# medspaCy's default pipeline (PyRuSH sentences, target matcher, ConText),
# whose default ConText rules are the 102 of models/rules (checked below),
# given the vocabulary's terms as target rules.
import json, resource, sys, time
from loguru import logger
logger.remove()  # PyRuSH logs every sentence split at DEBUG otherwise
import medspacy
from medspacy.ner import TargetRule
cases_path, concepts_path, rules_path = sys.argv[1:4]
nlp = medspacy.load()
ours = {(r["literal"], r["category"], r["direction"])
        for r in json.load(open(rules_path))["context_rules"]}
theirs = {(r.literal, r.category, r.direction) for r in nlp.get_pipe("medspacy_context").rules}
assert ours == theirs, "medspaCy's default ConText rules are not models/rules' any more"
vocabulary = json.load(open(concepts_path))
nlp.get_pipe("medspacy_target_matcher").add([
    TargetRule(term, c["type"].upper())
    for c in vocabulary["concepts"]
    for term in dict.fromkeys([c["heading"].lower(), *c.get("synonyms", [])])
])
texts = [json.loads(l)["text"] for l in open(cases_path)]
list(nlp.pipe(texts[:20]))
start = time.perf_counter()
docs = list(nlp.pipe(texts))
seconds = time.perf_counter() - start
print(json.dumps({"per_s": len(texts) / seconds,
                  "entities": sum(len(d.ents) for d in docs),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cases")
    parser.add_argument("--cli", required=True)
    parser.add_argument("--medspacy-python")
    parser.add_argument("--concepts", default="models/rules/concepts.json")
    parser.add_argument("--rules", default="models/rules/medspacy_context_rules.json")
    args = parser.parse_args()
    n = sum(1 for _ in open(args.cases))
    rows = []

    def row(what, per_s, cores, peak=None):
        rows.append((what, per_s, cores, peak))
        print(f"{what}: {per_s:.1f}/s", file=sys.stderr, flush=True)

    per_s, peak = run_cli(args.cli, args.cases, "--rules-only")
    row("CLI, rules only, 1 thread", per_s, 1, peak)
    per_s, peak = run_cli(args.cli, args.cases, "--models", "models")
    row("CLI, report model, 1 thread", per_s, 1, peak)
    per_s, peak = run_cli(args.cli, args.cases, "--models", "models", "--jobs", "2")
    row("CLI, report model, `--jobs 2`", per_s, 2, peak)
    os.environ["RAYON_NUM_THREADS"] = "1"
    rules = rules_bundle(tempfile.mkdtemp())
    per_s, _ = python_batch(args.cases, rules)
    row("Python `predict_batch`, rules only, 1 thread", per_s, 1)
    per_s, peak = python_batch(args.cases)
    row("Python `predict_batch`, report model, 1 thread", per_s, 1, peak)
    per_s, peak = ray_workers(args.cases, 2, rules)
    row("Ray, rules only, 2 workers (peak: one worker)", per_s, 2, peak)
    for workers in (1, 2):
        per_s, peak = ray_workers(args.cases, workers)
        s = "s" if workers > 1 else ""
        row(f"Ray, report model, {workers} worker{s} (peak: one worker)", per_s, workers, peak)
    if args.medspacy_python:
        done = subprocess.run(
            [args.medspacy_python, "-c", MEDSPACY, args.cases, args.concepts, args.rules],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(done.stdout.strip().splitlines()[-1])
        row("medspaCy (PyRuSH, target matcher, ConText), 1 process", m["per_s"], 1, m["peak_mib"])

    print(f"| {n} OpenI reports | reports/s | per core | peak memory |")
    print("|---|---|---|---|")
    for what, per_s, cores, peak in rows:
        memory = f"{peak:.0f} MiB" if peak is not None else "–"
        print(f"| {what} | {per_s:.1f} | {per_s / cores:.1f} | {memory} |")


if __name__ == "__main__":
    main()
