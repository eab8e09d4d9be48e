"""The sync rules of ``shared/contract/picsweb-schema.md`` as pure pandas functions.

DataFrames in, change sets out: no Airflow, no database. Rules 1-4 live in
:mod:`.qualifications`, rules 5-6 in the package :mod:`.reviews` (officer matching, the
download, the upload plan); each rule is one function named after it, so the contract's
rule list and the code read side by side. :mod:`.drift` says what still differs after a run
and why, from these same functions. The merge tasks' I/O (staging and PICSWeb in, change
sets out) is :mod:`picsweb_sync.stages.merge`'s; tests/unit/test_layout.py checks that
nothing here imports SQLAlchemy or Airflow, directly or through another module.
"""
