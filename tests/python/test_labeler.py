"""The Python package on the built wheel, against the CLI on the same cases.

Run by scripts/test-python (which builds and installs the wheel); needs
INTEGRABNER_CLI (the integrabner binary) and ../shared/data beside the
checkout.
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import unittest

from integrabner import Labeler

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
OPENI = SHARED / "openi" / "NLMCXR_reports.tgz"
NIH_IMAGE = SHARED / "nih-cxr" / "images" / "00000061_012.png"
CLI = os.environ.get("INTEGRABNER_CLI", str(ROOT / "target" / "debug" / "integrabner"))
REPORT = "Small left pleural effusion. No pneumothorax. Enteric tube in the stomach."


def cli_predict(*args, stdin=None):
    """The CLI's predictions, one dict per output line, run from the root."""
    done = subprocess.run(
        [CLI, "predict", *args], cwd=ROOT, input=stdin, capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def openi_cases(limit):
    """The first `limit` OpenI reports as predict's JSONL input lines."""
    done = subprocess.run(
        [CLI, "ingest", "--cases", str(OPENI)], capture_output=True, text=True, check=False
    )
    assert done.returncode in (0, 3), done.stderr
    return done.stdout.splitlines()[:limit]


class LabelerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.labeler = Labeler(ROOT / "models")

    def test_the_installed_bundle_is_the_default_and_has_every_model(self):
        installed = Labeler()
        self.assertIn("site-packages", str(installed.models))
        self.assertEqual(installed.bundle_version, self.labeler.bundle_version)
        self.assertEqual(installed.model_kinds, ["report", "image", "fusion"])

    def test_a_report_gives_what_the_cli_writes(self):
        ours = self.labeler.predict(REPORT, id="r1")
        (theirs,) = cli_predict("-", stdin=REPORT)
        theirs["id"] = "r1"
        self.assertEqual(ours, theirs)
        effusion = [f for f in ours["findings"] if f["concept"] == "Pleural Effusion"]
        self.assertEqual(effusion[0]["qualifiers"], ["left", "small"])

    def test_an_image_by_path_or_bytes_gives_what_the_cli_writes(self):
        by_path = self.labeler.predict(image=str(NIH_IMAGE), id="x", scores=True)
        by_bytes = self.labeler.predict(image=NIH_IMAGE.read_bytes(), id="x", scores=True)
        (theirs,) = cli_predict("--image", str(NIH_IMAGE), "--scores")
        theirs["id"] = "x"
        self.assertEqual(by_path, by_bytes)
        self.assertEqual(by_path, theirs)
        self.assertIn("abnormal", by_path["scores"])

    def test_a_report_with_its_image_is_fused(self):
        fused = self.labeler.predict(REPORT, image=[NIH_IMAGE], id="both", scores=True)
        self.assertTrue(any(k.startswith("text:") for k in fused["scores"]))
        self.assertTrue(any(f["source"] == "fusion" for f in fused["findings"]))

    def test_a_batch_is_each_case_in_order_and_bad_cases_are_named(self):
        cases = [{"id": "a", "text": REPORT}, {"id": 7, "text": "Heart size is normal."}]
        batch = self.labeler.predict_batch(cases)
        self.assertEqual(batch[0], self.labeler.predict(REPORT, id="a"))
        self.assertEqual(batch[1]["id"], "7")
        bad = cases + [{"id": "empty", "text": "   "}, {"id": "typo", "txt": "x"}, {"text": "no id"}]
        with self.assertRaisesRegex(ValueError, "case empty"):
            self.labeler.predict_batch(bad)
        reported = self.labeler.predict_batch(bad, errors="report")
        self.assertEqual([r["id"] for r in reported], ["a", "7", "empty", "#3", "#4"])
        self.assertEqual(reported[:2], batch)
        self.assertIn("empty", reported[2]["error"])
        self.assertIn("txt", reported[3]["error"])
        self.assertIn("no \"id\"", reported[4]["error"])
        with self.assertRaisesRegex(ValueError, "errors="):
            self.labeler.predict_batch(cases, errors="ignore")

    def test_bad_inputs_raise_with_the_reason(self):
        with self.assertRaisesRegex(ValueError, "empty"):
            self.labeler.predict("")
        with self.assertRaisesRegex(ValueError, "image"):
            self.labeler.predict(image=b"not an image")
        with self.assertRaisesRegex(TypeError, "image"):
            self.labeler.predict(image=3.5)
        self.assertEqual(self.labeler.predict("No effusion.")["id"], "unnamed")
        with self.assertRaisesRegex(ValueError, "case unnamed: .*at most 200000"):
            self.labeler.predict("effusion " * 200_000)

    def test_a_damaged_bundle_is_refused_naming_the_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            copy = pathlib.Path(tmp) / "models"
            shutil.copytree(ROOT / "models", copy)
            weights = copy / "text" / "model.gguf"
            data = bytearray(weights.read_bytes())
            data[len(data) // 2] ^= 0xFF
            weights.write_bytes(bytes(data))
            with self.assertRaisesRegex(ValueError, r"text/model\.gguf.*damaged"):
                Labeler(copy)
        with self.assertRaisesRegex(ValueError, "manifest.json"):
            Labeler(ROOT / "tests")

    def test_the_interpreter_lock_is_released_while_the_models_run(self):
        # A Python thread counts while a batch runs: with the lock held for
        # the whole call it could not count at all.
        cases = [json.loads(line) for line in openi_cases(20)]
        counted, running = [0], threading.Event()

        def count():
            while running.is_set():
                counted[0] += 1

        running.set()
        counter = threading.Thread(target=count)
        counter.start()
        try:
            before = counted[0]
            self.labeler.predict_batch(cases)
            during = counted[0] - before
        finally:
            running.clear()
            counter.join()
        self.assertGreater(during, 10_000)


def without_nulls(value):
    """A value with the keys Arrow adds for absent fields (null) dropped."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def example(name):
    """examples/NAME.py, loaded from its file rather than imported by name,
    so that Ray and Spark ship its functions to their workers by value."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RayTest(unittest.TestCase):
    def test_ray_with_two_workers_labels_300_openi_reports_as_the_cli_does(self):
        import ray

        ray_batch = example("ray_batch")

        with tempfile.TemporaryDirectory() as tmp:
            source = pathlib.Path(tmp) / "cases.jsonl"
            source.write_text("\n".join(openi_cases(300)) + "\n")
            theirs = {p["id"]: p for p in cli_predict(str(source), "--jobs", "2")}
            out = pathlib.Path(tmp) / "out"
            ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
            try:
                ray_batch.label(str(source), str(out), workers=2)
            finally:
                ray.shutdown()
            ours = {}
            for part in sorted(out.glob("*.json")):
                for line in part.read_text().splitlines():
                    p = json.loads(line)
                    ours[p["id"]] = p
        self.assertEqual(len(theirs), 300)
        self.assertEqual(sorted(ours), sorted(theirs))
        for id, theirs_p in theirs.items():
            with self.subTest(id=id):
                self.assertEqual(without_nulls(ours[id]), theirs_p)


class SparkTest(unittest.TestCase):
    def test_spark_map_in_pandas_labels_100_openi_reports_as_the_cli_does(self):
        from pyspark.sql import SparkSession

        spark_batch = example("spark_batch")
        with tempfile.TemporaryDirectory() as tmp:
            source = pathlib.Path(tmp) / "cases.jsonl"
            lines = openi_cases(100)
            # One case names its image, so an array column crosses too.
            lines[5] = json.dumps({**json.loads(lines[5]), "images": [str(NIH_IMAGE)]})
            source.write_text("\n".join(lines) + "\n")
            theirs = {p["id"]: p for p in cli_predict(str(source))}
            out = pathlib.Path(tmp) / "out"
            spark = SparkSession.builder.master("local[2]").getOrCreate()
            try:
                spark_batch.label(spark, str(source), str(out))
            finally:
                spark.stop()
            ours = {}
            for part in out.glob("part-*"):
                for line in part.read_text().splitlines():
                    p = json.loads(line)
                    ours[p["id"]] = p
        self.assertEqual(len(theirs), 100)
        self.assertEqual(ours, theirs)
        fused = ours[json.loads(lines[5])["id"]]
        self.assertTrue(any(f["source"] == "fusion" for f in fused["findings"]))


if __name__ == "__main__":
    unittest.main()
