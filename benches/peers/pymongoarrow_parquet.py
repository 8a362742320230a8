"""Peer: pymongoarrow's find_arrow_all (BSON decoded in C into Arrow, schema
inferred from the documents) -> Parquet.

Only the batch size is set; the rest is the library's own idea of types
(ObjectIds as its ObjectId extension type, nested objects as structs, arrays
as lists).
"""
import os

import pyarrow.parquet as pq
from pymongo import MongoClient
from pymongoarrow.api import find_arrow_all

from _day import BATCH, args


def main():
    uri, database, collection, query, out = args()
    table = find_arrow_all(MongoClient(uri)[database][collection], query, batch_size=BATCH)
    pq.write_table(table, os.path.join(out, f"{collection}.parquet"))
    print(table.num_rows)


if __name__ == "__main__":
    main()
