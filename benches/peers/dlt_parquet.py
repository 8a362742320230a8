"""Peer: dlt, a resource over pymongo, to the filesystem destination in
Parquet, with dlt's defaults: nested objects become `a__b` columns and
arrays child tables (`orders__items`, `orders__items__discounts`).

ObjectIds become hex strings, as dlt's own MongoDB source does; dlt cannot
serialize bson types itself. Pages of 1000 documents, as dlt advises.
"""
import os
import tempfile

import dlt
from bson import ObjectId
from pymongo import MongoClient

from _day import BATCH, args


def plain(doc):
    """bson ObjectIds (top level or nested) to their hex string."""
    if isinstance(doc, dict):
        return {k: plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [plain(v) for v in doc]
    return str(doc) if isinstance(doc, ObjectId) else doc


def main():
    uri, database, collection, query, out = args()

    @dlt.resource(name=collection, write_disposition="replace")
    def documents():
        page = []
        for doc in MongoClient(uri)[database][collection].find(query, batch_size=BATCH):
            page.append(plain(doc))
            if len(page) == 1000:
                yield page
                page = []
        if page:
            yield page

    with tempfile.TemporaryDirectory() as state:
        pipeline = dlt.pipeline(
            pipeline_name="peers_" + collection,
            pipelines_dir=state,
            destination=dlt.destinations.filesystem(bucket_url="file://" + os.path.abspath(out)),
            dataset_name="peers",
        )
        pipeline.run(documents(), loader_file_format="parquet")
        print(pipeline.last_trace.last_normalize_info.row_counts.get(collection, 0))


if __name__ == "__main__":
    main()
