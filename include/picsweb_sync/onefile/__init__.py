"""OneFile as the sync reads and writes it: the API's names (``names``), its JSON rows parsed
into typed frames (``fields``), UK dates and times <-> UTC instants (``ukdates``), and the
bodies of a review create (``payloads``).

Not the HTTP client: that is the Airflow hook, ``onefile.hook`` under ``plugins/``.
"""
