"""Preflight: does the sync fit this OneFile and this PICSWeb? Read-only, before the first run.

A provider's first day is the riskiest: the OneFile field names and PICSWeb's tables are
partly assumed (the contracts mark which), so a renamed field would silently sync nothing,
a missing permission would fail the first load, a different collation would change what
"unchanged" means. ``python -m picsweb_sync.preflight`` (``make preflight``) answers with one
table of ok / warning / blocking checks, each saying what to do, and an exit code a
deployment pipeline can use (:mod:`~picsweb_sync.preflight.cli`). The cheap half (PICSWeb's
tables, settings, collation and permissions) is also the DAG's first task
(:mod:`~picsweb_sync.preflight.dag_check`), so a schema change in PICSWeb stops a run at the
start with the reason, not halfway.

Modules: ``findings`` (levels, checks, the table and JSON), ``read_only`` (how every database
check connects), ``schema`` (tables compared with the sync's definitions), ``picsweb``
(PICSWeb's connection, tables and settings row), ``collation`` (how text compares),
``permissions`` (what the login may do), ``own_tables`` (the sync's ``sync_*`` tables),
``onefile`` (OneFile's authentication, environment and organisations, then the rest in
order), ``onefile_pages`` (the searches' first pages, paging and rate-limit headers),
``field_checks`` (each field read or written), ``first_run`` (what a first run would
touch), ``connections`` (Airflow connections outside a task), ``cli`` and ``dag_check``.
"""
