"""Peer: pymongo -> pandas.json_normalize -> Parquet, what the original Python
project did.

Nested objects become `a__b` columns; arrays stay Python lists in one
column. pyarrow refuses what pandas holds as mixed Python objects, so, as such
code has to: ObjectIds become their hex string, and a column pyarrow cannot
type (a value that is sometimes a string, e.g. the demo's drifted `total` or
an `items[].quantity` of "3") is written as JSON text.
"""
import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from bson import ObjectId
from pymongo import MongoClient

from _day import BATCH, args


def main():
    uri, database, collection, query, out = args()
    docs = list(MongoClient(uri)[database][collection].find(query, batch_size=BATCH))
    df = pd.json_normalize(docs, sep="__")
    columns = {}
    for name in df.columns:
        values = df[name].map(lambda v: str(v) if isinstance(v, ObjectId) else v)
        try:
            columns[name] = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array(
                [None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
                 else json.dumps(v, default=str) for v in values],
                type=pa.string())
    pq.write_table(pa.table(columns), os.path.join(out, f"{collection}.parquet"))
    print(len(docs))


if __name__ == "__main__":
    main()
