"""The drift report on demand: what still differs between OneFile and PICSWeb for the whole
population, and why. Read-only, like the preflight.

``python -m picsweb_sync.drift`` (``make drift``) reads OneFile now (searches only: every
organisation of PICSWeb's OneFile Settings, its learners, assessors, learning aims and the
reviews of a window around today), PICSWeb as it is, and the evidence of the latest real run
in the staging database, and asks :func:`picsweb_sync.rules.drift.drift_report` for every
difference with its reason. It prints the counts by reason and by field and the first rows
of each reason (``--json`` for machines, ``--csv FILE`` for every row) and exits 0 (no
unexplained difference), 1 (some) or 2 (it could not run). The per-run report is the DAG's
task ``report_drift`` (:mod:`picsweb_sync.stages.drift`).

Modules: ``population`` (OneFile's side, read fresh through the hook), ``last_run`` (the
latest real run and its evidence), ``reasons`` (what each reason means and what to do about
it), ``output`` (the text, the JSON and the CSV) and ``cli`` (arguments, connections, the
exit code).
"""
