"""Runs a DAG written by `etl airflow` for a range of days, in one process,
as the stack tests check it: `python run_dag.py DAGS_FOLDER DAG_ID FIRST
LAST TIMEZONE PASSES`.

It imports the folder with Airflow's own DagBag and stops (exit 3) on any
import error. Then, PASSES times over, it runs the DAG with `dag.test` once
per day, with the logical date of the run Airflow starts when that day
ends (a manual run's data interval is the one that ends at its logical
date). Each run prints one line `RESULT {json}` with the day, the pass, the
data interval, the run's state and each task's state; everything else on
stdout and stderr is Airflow's log, the tasks' output included.
"""

import json
import sys
from datetime import date, timedelta

import pendulum
from airflow.dag_processing.dagbag import DagBag


def main(folder, dag_id, first, last, timezone, passes):
    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        print("RESULT " + json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}))
        return 3
    dag = bag.get_dag(dag_id)
    print("RESULT " + json.dumps({"dags": sorted(bag.dag_ids), "tasks": sorted(dag.task_ids)}), flush=True)
    for n in range(1, int(passes) + 1):
        day = date.fromisoformat(first)
        while day <= date.fromisoformat(last):
            fire = pendulum.datetime(day.year, day.month, day.day, tz=timezone).add(days=1)
            run = dag.test(logical_date=fire)
            print("RESULT " + json.dumps({
                "pass": n,
                "day": str(day),
                "interval": [str(run.data_interval_start), str(run.data_interval_end)],
                "run": str(run.state),
                "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
            }), flush=True)
            day += timedelta(days=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
