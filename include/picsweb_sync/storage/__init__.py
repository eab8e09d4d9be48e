"""Storage, layered bottom to top: DataFrames <-> SQL and engines (``sqlframes``, ``engines``:
no project knowledge), the table definitions and their queries (``picsweb_tables``, the
sync's own ``project_tables``), then the guarded, set-based writes to PICSWeb
(``picsweb_writes``). A lower layer never imports a higher one (tests/unit/test_layering.py).
"""
