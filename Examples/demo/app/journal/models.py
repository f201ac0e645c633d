import sqlite3


def entries(db_path):
    """Return every journal entry, newest first."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT id, title, body FROM entries ORDER BY id DESC").fetchall()
