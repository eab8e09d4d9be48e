"""OneFile as the sync reads and writes it: the API's names (``names``), its JSON rows parsed
into typed frames (``fields``), and UK dates and times <-> UTC instants (``ukdates``).

Not the HTTP client: that is the Airflow hook, ``onefile.hook`` under ``plugins/``.
"""
