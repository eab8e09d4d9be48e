"""The embedded demo of the sync (``make demo``, ``python -m sync_demo``) and the stand-in
PICSWeb database it and the tests build.

Beside ``picsweb_sync``, not inside it: the demo drives the OneFile simulator and its data
generator, which a deployment of the sync never ships with the sync's own code.

- :mod:`sync_demo.cli`: the command (two ``dag.test()`` runs, or ``--serve``);
- :mod:`sync_demo.builder`: what every demo builds (the dataset, the PICSWeb loaded, the
  hosted simulator), for the command and the compose profile's ``deploy/picsweb_demo.py``;
- :mod:`sync_demo.dag_runs`: the connections, logical dates and ``dag.test()`` runs the demo
  and the end-to-end tests share;
- :mod:`sync_demo.picsweb_db`: the contract's PICSWeb tables, created and filled.
"""
