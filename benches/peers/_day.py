"""What every Python peer shares: its arguments and the day's query.

    PEER.py URI DATABASE COLLECTION DAY OUT_DIR

The query is the one etl sends for a `date` partition: `created_at` in
[DAY 00:00, DAY+1 00:00) UTC, as BSON dates. BATCH is the cursor batch size
etl uses (the project's `defaults.batch_size`) and the drain floor too. Without
it mongo-java-server answers a getMore with everything left at once, a reply
over the 48 MB message limit that pymongo refuses at 100,000 orders.
"""

BATCH = 1000
import datetime as dt
import os
import sys


def args():
    if len(sys.argv) != 6:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} URI DATABASE COLLECTION DAY OUT_DIR")
    uri, database, collection, day, out = sys.argv[1:]
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    query = {"created_at": {"$gte": start, "$lt": start + dt.timedelta(days=1)}}
    os.makedirs(out, exist_ok=True)
    return uri, database, collection, query, out
