"""The baseline for bench/intake.py: a minimal WSGI app (no Django) that only INSERTs the raw
body into a table, durably (autocommit: committed before the answer), and answers 200.

    gunicorn --pythonpath bench _bare_intake:application   (BARE_DSN=postgresql://.../db)
"""

import os
import threading

import psycopg

_local = threading.local()  # one connection per gunicorn thread, kept like Django's


def application(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["BARE_DSN"], autocommit=True)
    conn.execute("INSERT INTO bare_intake (body) VALUES (%s)", [body.decode()])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
