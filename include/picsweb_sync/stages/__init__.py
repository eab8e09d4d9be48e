"""The DAG's task bodies, in the order a run flows: ``start_finish.start_run``, ``extract``
(one organisation's OneFile rows into staging), ``merge`` (staging + PICSWeb in, change sets
out, by the rules of :mod:`picsweb_sync.rules`), ``load`` (PICSWeb change sets into PICSWeb),
``push`` (OneFile change sets to OneFile through the outbox), ``drift`` (what still differs,
and why), then ``start_finish``'s ``finish_run``, ``check_thresholds`` and
``record_failure``.

Each task calls one function here through :func:`picsweb_sync.run.runtime.run_stage`.
"""
