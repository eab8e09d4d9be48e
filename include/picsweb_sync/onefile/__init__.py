"""OneFile as the sync reads and writes it: the API's names (``names``), its JSON rows parsed
into typed frames (``fields``) within what each field's PICSWeb column accepts
(``column_limits``), UK dates and times <-> UTC instants (``ukdates``), and the wire bodies
of an aim update and a review create (``payloads``).

Not the HTTP client: that is the Airflow hook, ``onefile.hook`` under ``plugins/``.
"""
