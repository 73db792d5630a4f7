#!/usr/bin/env python3
"""Label an archive of cases with IntegraBNER on Spark (PySpark).

    python examples/spark_batch.py IN.jsonl OUT_DIR

The Spark counterpart of examples/ray_batch.py: the same input lines, the
Labeler loaded once per Python worker inside `mapInPandas`, and OUT_DIR
written as text files whose lines are predict's JSON objects (one per case;
{"id": ..., "error": ...} for a case that cannot be analysed). Runs on a
local Spark as it is; give `spark-submit --master ...` for a cluster (the
wheel installed on every node; PYSPARK_PYTHON naming that interpreter).
"""

import json
import math
import sys


def case_of(row):
    """A case line from a row of Spark's frame: array columns (images) as
    lists, and the fields a line did not have (None, or NaN in pandas)
    left out, as in the line itself."""
    case = {}
    for key, value in row.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        case[key] = value
    return case


def label_partitions(frames):
    """mapInPandas's function: pandas frames of cases in, frames of
    (id, prediction JSON) out."""
    import pandas as pd
    from integrabner import Labeler

    labeler = Labeler()
    for frame in frames:
        cases = [case_of(row) for row in frame.to_dict("records")]
        predictions = labeler.predict_batch(cases, errors="report")
        yield pd.DataFrame(
            {
                "id": [p["id"] for p in predictions],
                "prediction": [json.dumps(p) for p in predictions],
            }
        )


PREDICTION_SCHEMA = "id string, prediction string"


def label(spark, source, out_dir):
    """Reads `source` (JSONL), labels it, writes `out_dir` (JSONL text)."""
    cases = spark.read.json(source)
    predictions = cases.mapInPandas(label_partitions, schema=PREDICTION_SCHEMA)
    predictions.select("prediction").write.text(out_dir)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("integrabner").getOrCreate()
    label(spark, sys.argv[1], sys.argv[2])
    spark.stop()


if __name__ == "__main__":
    main()
