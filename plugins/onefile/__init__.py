"""OneFile API v2.1 client for Airflow: see :mod:`onefile.hook`."""
