"""How a peer's Parquet output came out, in one tab-separated line:

    tables  rows  created_at  _id  items  total

tables: the Parquet tables written (a folder of files, or one file), dlt's
own `_dlt_*` bookkeeping left out; rows: of the main table (named like the
collection); then how the day's dates, ObjectIds, the nested `items` array of
objects and the drifting `total` (a number, sometimes a string in the demo
data) were typed.

    inspect_parquet.py OUT_DIR COLLECTION
"""
import collections
import os
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def table_of(out, path):
    """The nearest folder that is not a partition (`k=v`), else the file's stem."""
    rel = os.path.relpath(path, out).split(os.sep)
    for part in reversed(rel[:-1]):
        if "=" not in part:
            return part
    return os.path.splitext(rel[-1])[0]


def main():
    out, collection = sys.argv[1:3]
    files = collections.defaultdict(list)
    for d, _, names in os.walk(out):
        for n in names:
            if n.endswith(".parquet"):
                p = os.path.join(d, n)
                t = table_of(out, p)
                if not t.startswith("_dlt"):
                    files[t].append(p)
    if collection not in files:
        print("\t".join(["0", "0", "-", "-", "-", "-"]))
        return
    main_table = pa.concat_tables(
        [pq.read_table(f) for f in files[collection]], promote_options="permissive")
    schema = main_table.schema

    def col(name):
        return main_table.column(name) if name in schema.names else None

    created = str(schema.field("created_at").type) if "created_at" in schema.names else "missing"

    ids = col("_id")
    if ids is None:
        oid = "missing"
    elif pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        first = next((v for v in ids.to_pylist() if v is not None), "")
        oid = "string hex" if re.fullmatch(r"[0-9a-f]{24}", first) else "string"
    elif isinstance(ids.type, pa.ExtensionType):
        oid = f"{ids.type.extension_name} ext ({ids.type.storage_type})"
    else:
        oid = str(ids.type)

    children = sorted(t for t in files if t.startswith(collection + "__items"))
    items = col("items")
    if children:
        items_desc = "child table " + " + ".join(children)
        if items is not None:
            items_desc += " and column " + str(items.type)
    elif items is None:
        items_desc = "dropped"
    elif pa.types.is_string(items.type) or pa.types.is_large_string(items.type):
        items_desc = "JSON string"
    else:
        items_desc = str(items.type).replace("element: ", "")
        if len(items_desc) > 40:
            items_desc = items_desc[:37] + "..."

    totals = col("total")
    if totals is None:
        total = "missing"
    else:
        total = f"{totals.type}, {totals.null_count} null"
        variants = [n for n in schema.names if n.startswith("total__")]
        if variants:
            total += " +" + ",".join(variants)

    print("\t".join([str(len(files)), str(main_table.num_rows), created, oid, items_desc, total]))


if __name__ == "__main__":
    main()
