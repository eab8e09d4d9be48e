"""The sync page: an Airflow 3 plugin (FastAPI app + navigation entry) showing the run
history, each run's details and an audit search of the OneFile-PICSWeb sync.

``sync_page_plugin.py`` is the only file Airflow loads from this folder (see
``.airflowignore``); it builds the app (``sync_page.app``) only when the api-server asks.
"""
