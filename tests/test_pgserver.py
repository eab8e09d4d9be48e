import sqlalchemy as sa


def test_each_test_gets_its_own_empty_database(db_url):
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (x INTEGER)"))
        conn.execute(sa.text("INSERT INTO probe VALUES (41)"))
        assert conn.execute(sa.text("SELECT x + 1 FROM probe")).scalar_one() == 42
    engine.dispose()
