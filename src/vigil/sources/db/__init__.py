"""Database sources: PostgreSQL and MySQL/MariaDB dumps taken by their own
client tools, the child process that streams a dump, and the row counting
that lets `verify --restore-test` compare tables.
"""
